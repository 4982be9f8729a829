"""The resumable state of a training run, saved atomically into its run directory.

``run_dir/state.pt`` (torch.save) holds the trainable parameters, the optimiser state, the torch RNG
state, the step reached (which fixes the data position), the per-step losses and the adapter snapshots
kept for attribution. It is written to a temporary file, fsynced, then renamed over the old one, and
``run_dir/state.json`` (step and config key, for people and tools) follows the same way: a kill at any
moment leaves the previous complete checkpoint. ``run_dir/config.json`` pins the run's configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attribution_oracle.factory.factory_errors import RunMismatchError
from attribution_oracle.files import atomic_write

__all__ = ["RunState", "bind_run_dir", "load_state", "save_state"]

STATE = "state.pt"


@dataclass
class RunState:
    """Where a run is."""

    step: int
    params: dict[str, torch.Tensor]
    optimizer: dict
    rng: torch.Tensor
    losses: list[float] = field(default_factory=list)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    #: chunk gradients captured in the training backward for the index (``factory.index_capture``)
    captured: dict[int, dict[int, torch.Tensor]] = field(default_factory=dict)


def bind_run_dir(run_dir: Path, config: dict) -> None:
    """Create ``run_dir`` for ``config``, or check that it already belongs to it (``RunMismatchError``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    text = json.dumps(config, sort_keys=True, indent=2)
    if path.is_file():
        if json.loads(path.read_text()) != json.loads(text):
            raise RunMismatchError(f"{run_dir} holds a run with other settings; use another run directory")
        return
    atomic_write(path, lambda h: h.write(text.encode()))


def save_state(run_dir: Path, state: RunState) -> None:
    """Write the checkpoint atomically."""
    payload = {
        "step": state.step,
        "params": state.params,
        "optimizer": state.optimizer,
        "rng": state.rng,
        "losses": state.losses,
        "snapshots": state.snapshots,
        "captured": state.captured,
    }
    atomic_write(run_dir / STATE, lambda h: torch.save(payload, h))
    info = json.dumps({"step": state.step}).encode()
    atomic_write(run_dir / "state.json", lambda h: h.write(info))


def load_state(run_dir: Path) -> RunState | None:
    """The last checkpoint, or None when the run has not saved one."""
    path = run_dir / STATE
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return RunState(**payload)
