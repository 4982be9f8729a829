"""Kill-and-resume: a training process killed with SIGKILL mid-run, rerun with the same arguments, yields the same
adapter bytes (and manifest) as an uninterrupted run; two processes score identically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from world import make_world

WORKER = Path(__file__).with_name("worker.py")
STEPS = 240
TIMEOUT_S = 300


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[3] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(WORKER), *args], env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _kill_after(root: Path, run_dir: Path, at_step: int) -> int:
    """Start training, SIGKILL it once it has reported ``at_step``; returns the checkpointed step it died after."""
    proc = subprocess.Popen([sys.executable, str(WORKER), "train", str(root), str(run_dir), str(STEPS)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT_S
        for line in proc.stdout:
            if line.startswith("step ") and int(line.split()[1]) >= at_step:
                break
            assert time.monotonic() < deadline, "the worker did not reach the step in time"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return json.loads((run_dir / "state.json").read_text())["step"]


@pytest.fixture(scope="module")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_world(root).catalog.close()
    return root


def test_kill_and_resume_gives_the_same_adapter_bytes(world_root: Path) -> None:
    uninterrupted = _run("train", str(world_root), str(world_root / "run-a"), str(STEPS)).split("\n")[-2].split()
    assert uninterrupted[0] == "done" and uninterrupted[3] == "0"

    killed_at = _kill_after(world_root, world_root / "run-b", at_step=40)
    assert 0 < killed_at < STEPS, "the kill must land mid-training"
    resumed = _run("train", str(world_root), str(world_root / "run-b"), str(STEPS)).split("\n")[-2].split()
    assert resumed[0] == "done" and int(resumed[3]) == killed_at

    # same adapter sha256 (the bytes are content-addressed), same manifest
    assert resumed[2] == uninterrupted[2]
    assert resumed[1] == uninterrupted[1]


def test_two_processes_give_identical_scores(world_root: Path) -> None:
    line = _run("train", str(world_root), str(world_root / "run-a"), str(STEPS)).split("\n")[-2].split()
    manifest = line[1]
    first = json.loads(_run("score", str(world_root), manifest, str(world_root / "cache-1")))
    second = json.loads(_run("score", str(world_root), manifest, str(world_root / "cache-2")))
    assert first == second
    assert first and set(first) <= {str(i) for i in range(1, 9)} and all(float(v) > 0 for v in first.values())
