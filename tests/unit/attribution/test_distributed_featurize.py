"""Sharded featurization on torch.distributed (gloo): 2 processes write the same index bytes as 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attribution_oracle.attribution.distributed import shard_bounds

WORKER = Path(__file__).with_name("distributed_worker.py")


def test_shards_cover_every_batch_once_in_order() -> None:
    for n_batches in range(0, 12):
        for world in range(1, 5):
            runs = [shard_bounds(n_batches, world, r) for r in range(world)]
            assert runs[0][0] == 0 and runs[-1][1] == n_batches
            assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))
            assert max(b - a for a, b in runs) - min(b - a for a, b in runs) <= 1


def build(out: Path, nproc: int) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(WORKER),
         str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_write_the_index_byte_identical_to_one(tmp_path: Path) -> None:
    assert "world 1 rows 100" in build(tmp_path / "one", 1)
    assert "world 2 rows 100" in build(tmp_path / "two", 2)
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    assert {"manifest.json", "features-00000.safetensors", "transforms.safetensors"} <= set(files)
    for name in files:
        if name != "queries.pt":
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    one, two = torch.load(tmp_path / "one" / "queries.pt"), torch.load(tmp_path / "two" / "queries.pt")
    assert torch.equal(one, two)
