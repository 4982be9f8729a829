"""The index build's gradient pass sharded over torch.distributed: ``model train --nproc N``.

    with IndexShardGroup(2, base_spec="tiny:3", lora_config=..., seed=0) as group:    # helpers start loading
        ...                                                                          # rank 0 trains meanwhile
        grads = group.catch_up(model, chunks, wanted, seq_len, batch_size, pad_id)  # joins; shards the pass

Rank 0 is the training process itself; ``N - 1`` helper processes (``python -m
attribution_oracle.factory.index_shards``) join it in a process group (gloo on CPU, NCCL when CUDA is available: one
rank per GPU, ``cuda:<rank mod GPUs>``), load the same base model and LoRA layout, and wait for jobs. A job is the
pass ``factory.index_capture``'s catch-up runs at one attribution checkpoint (every chunk with ``index_capture =
"pass"``, the chunks the capture windows missed with ``"backward"``): rank 0 broadcasts the checkpoint's LoRA
parameters and the chunks, every rank computes a contiguous run of the pass's batches
(``attribution.distributed.shard_bounds``; the same batches of packed rows one process makes) and
``all_gather_object`` brings the gradients to rank 0, which projects them and writes the index. A batch is computed
with the same shapes, values and torch thread count (rank 0's, passed on) whatever rank computes it, so the index
rank 0 writes is byte-identical to a single process's (``tests/integration``). Training itself is not sharded (it
would change the result); the helpers start when training is done.

Scaling: the pass is compute-bound, so N ranks on N free cores or GPUs approach N x on it; on a 2-core shared machine
expect about 1x (``benchmarks/scaling.py``). With the backward capture most runs have little or nothing to catch up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

from attribution_oracle.attribution.distributed import shard_bounds
from attribution_oracle.factory.chunking import Chunk
from attribution_oracle.factory.eager_attention import eager_attention
from attribution_oracle.factory.index_capture import catch_up_batch_count, catch_up_gradients

__all__ = ["IndexShardGroup", "backend_for_device"]

TIMEOUT = dt.timedelta(hours=6)


def backend_for_device() -> str:
    """NCCL when CUDA is available, else gloo."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def _load_params(model: nn.Module, params: dict[str, torch.Tensor]) -> None:
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for name, value in params.items():
            trainable[name].copy_(value)


def _shard(model: nn.Module, job: dict, rank: int, world: int) -> dict[int, torch.Tensor]:
    chunks = [Chunk(c, i, tuple(t)) for c, i, t in job["chunks"]]
    n_batches = catch_up_batch_count(chunks, job["wanted"], job["seq_len"], job["batch_size"])
    start, stop = shard_bounds(n_batches, world, rank)
    with eager_attention(model):
        return catch_up_gradients(
            model, chunks, job["wanted"], job["seq_len"], job["batch_size"], job["pad_id"], batches=(start, stop)
        )


class IndexShardGroup:
    """This process as rank 0 of ``nproc`` ranks, the others helper processes it starts and stops."""

    def __init__(self, nproc: int, *, base_spec: str, lora_config: dict, seed: int) -> None:
        """Describe the group; ``__enter__`` starts it."""
        if nproc < 2:
            raise ValueError("a shard group needs at least 2 processes")
        self.nproc, self.base_spec, self.lora_config, self.seed = nproc, base_spec, lora_config, seed
        self.helpers: list[subprocess.Popen] = []

    def __enter__(self) -> IndexShardGroup:
        """Start the helpers (they load the model while this process trains); the group is joined on first use."""
        if dist.is_initialized():
            raise RuntimeError("a torch.distributed process group is already initialised")
        self.port = _free_port()
        common = [
            "--world", str(self.nproc), "--port", str(self.port), "--base", self.base_spec,
            "--lora", json.dumps(self.lora_config), "--seed", str(self.seed), "--threads", str(torch.get_num_threads()),
        ]  # fmt: skip
        for rank in range(1, self.nproc):
            self.helpers.append(
                subprocess.Popen([sys.executable, "-m", __name__, "--rank", str(rank), *common], env=dict(os.environ))
            )
        self.joined = False
        return self

    def _join(self) -> None:
        if self.joined:
            return
        dead = [p.returncode for p in self.helpers if p.poll() is not None]
        if dead:  # e.g. the helper could not load the base model: do not wait for it to join
            raise RuntimeError(f"an index shard helper exited before joining (exit codes {dead})")
        if torch.cuda.is_available():
            torch.cuda.set_device(_device(0))
        dist.init_process_group(
            backend_for_device(), init_method=f"tcp://127.0.0.1:{self.port}", rank=0, world_size=self.nproc,
            timeout=TIMEOUT,
        )  # fmt: skip
        self.joined = True

    def __exit__(self, kind, value, traceback) -> None:
        """Tell the helpers to stop (or end them when the group was never used or failed), wait for them."""
        try:
            if kind is None and self.joined:
                dist.broadcast_object_list([None], src=0)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
            if not (kind is None and self.joined):
                for proc in self.helpers:
                    proc.terminate()
            self._stop_helpers(graceful=kind is None and self.joined)

    def _stop_helpers(self, graceful: bool = False) -> None:
        for proc in self.helpers:
            try:
                proc.wait(timeout=60 if graceful else 1)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        failed = [p.returncode for p in self.helpers if p.returncode not in (0, -9, -15)]
        self.helpers = []
        if graceful and failed:
            raise RuntimeError(f"an index shard helper failed (exit codes {failed})")

    def catch_up(
        self,
        model: nn.Module,
        chunks: Sequence[Chunk],
        wanted: Sequence[int],
        seq_len: int,
        batch_size: int,
        pad_id: int,
    ) -> dict[int, torch.Tensor]:
        """``index_capture.catch_up_gradients`` at the model's current LoRA parameters, sharded over the group."""
        self._join()
        params = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
        job = {
            "params": params,
            "chunks": [(c.contribution, c.index, list(c.tokens)) for c in chunks],
            "wanted": list(wanted),
            "seq_len": seq_len,
            "batch_size": batch_size,
            "pad_id": pad_id,
        }
        dist.broadcast_object_list([job], src=0)
        mine = _shard(model, job, 0, self.nproc)
        parts: list = [None] * self.nproc
        dist.all_gather_object(parts, mine)
        out: dict[int, torch.Tensor] = {}
        for part in parts:
            out.update(part)
        return out


def _helper(args: argparse.Namespace) -> None:
    from attribution_oracle.factory.peft_lora import attach_lora
    from attribution_oracle.models import load_base_model

    torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        torch.cuda.set_device(_device(args.rank))
    base = load_base_model(args.base)  # before joining: rank 0 is still training
    model = attach_lora(base.model, json.loads(args.lora), args.seed).to(_device(args.rank))
    dist.init_process_group(
        backend_for_device(),
        init_method=f"tcp://127.0.0.1:{args.port}",
        rank=args.rank,
        world_size=args.world,
        timeout=TIMEOUT,
    )
    try:
        while True:
            box: list = [None]
            dist.broadcast_object_list(box, src=0)
            job = box[0]
            if job is None:
                break
            _load_params(model, job["params"])
            parts: list = [None] * args.world
            dist.all_gather_object(parts, _shard(model, job, args.rank, args.world))
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """A helper rank (started by ``IndexShardGroup``)."""
    p = argparse.ArgumentParser(description="index shard helper rank (started by model train --nproc N)")
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--lora", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    _helper(p.parse_args(argv))


if __name__ == "__main__":
    main()
