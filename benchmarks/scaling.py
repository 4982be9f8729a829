"""Scale-out of the factory's index build on torch.distributed: ``train_model(nproc=N)`` (``model train --nproc N``)
against one process, same run, same data.

The demo corpus (without the mallory files), ``index_capture="pass"`` so that every training chunk's gradient goes
through the sharded pass (with the default backward capture there is usually little left to shard), a few training
steps (training is not sharded and is not what is measured). For each N the whole factory run is made in a scratch
world; the figure is the attribution-artefact time (``TrainedModel.index_seconds``: it includes starting the N - 1
helper processes and loading the base model in them, the broadcast of the checkpoint and the gather). Efficiency =
``t(1) / (N * t(N))``; the index files are checked to be byte-identical across N.

    .venv/bin/python benchmarks/scaling.py                       # SmolLM2-135M, N = 1, 2; appends to BENCHMARKS.md
    .venv/bin/python benchmarks/scaling.py --base tiny:0 --no-markdown

On the 2-core machine shared by several sessions expect about 1x (or below: the helpers compete with everything
else); on a machine with N free cores, or N GPUs (NCCL, one rank per GPU), the pass approaches N x.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import append_section, load_line, machine

from attribution_oracle.factory import CatalogSource, TrainConfig, train_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CORPUS = ROOT / "demo" / "corpus"


def run(spec: str, config: TrainConfig, nproc: int) -> dict[str, Any]:
    """One factory run with the index pass sharded over ``nproc`` processes."""
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "factory"))
    from world import make_world

    texts = [p.read_text() for p in sorted(CORPUS.rglob("*.txt")) if p.parent.name != "mallory"]
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(Path(tmp), texts)
        result = train_model(
            CatalogSource(world.catalog), world.store, ["1"], base_spec=spec, config=config,
            run_dir=Path(tmp) / "run", nproc=nproc,
        )  # fmt: skip
    return {
        "nproc": nproc,
        "index_s": result.index_seconds,
        "train_s": result.train_seconds,
        "train_chunks": result.manifest["chunking"]["train_chunks"],
        "index_files": result.manifest["attribution"]["gradient_index"]["files"],
    }


def main(argv: list[str] | None = None) -> None:
    """Run N = 1 and the larger N alternately, print the table, write the JSON and the BENCHMARKS.md section."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2", help="base model spec (smollm2, tiny:SEED)")
    p.add_argument("--nprocs", default="1,2", help="process counts, comma-separated (1 first)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--repeats", type=int, default=1, help="runs per N (best kept)")
    p.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    p.add_argument("--no-markdown", action="store_true")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    threads_env = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    command = " ".join([*threads_env, ".venv/bin/python", "benchmarks/scaling.py", *map(shlex.quote, sys.argv[1:])])
    started, t0, load_start = dt.datetime.now(dt.UTC), time.perf_counter(), load_line()
    nprocs = [int(n) for n in args.nprocs.split(",")]
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, index_capture="pass")
    runs: dict[int, list[dict]] = {n: [] for n in nprocs}
    for _ in range(args.repeats):
        for n in nprocs:
            runs[n].append(run(args.base, config, n))
            print(f"nproc {n}: index {runs[n][-1]['index_s']:.1f} s", flush=True)
    best = {n: min(r, key=lambda x: x["index_s"]) for n, r in runs.items()}
    one = best[nprocs[0]]["index_s"] * nprocs[0]
    identical = len({json.dumps(b["index_files"], sort_keys=True) for b in best.values()}) == 1
    rows = [(n, best[n]["index_s"], one / best[n]["index_s"], one / (n * best[n]["index_s"])) for n in nprocs]
    print(f"\n{'processes':>10}{'index s':>10}{'speed-up':>10}{'efficiency':>12}")
    for n, s, speed, eff in rows:
        print(f"{n:>10}{s:>10.1f}{speed:>9.2f}x{eff:>11.0%}")
    print(f"index files byte-identical across process counts: {identical}")
    report = {"speedup": {str(n): speed for n, _, speed, _ in rows}, "byte_identical": identical}
    detail = {
        **report,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "base": args.base,
        "config": config.to_dict(),
        "runs": {str(n): r for n, r in runs.items()},
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "load_start": load_start,
        "load_end": load_line(),
        "wall_s": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_name(args.out.stem + ".meta.json").write_text(json.dumps(detail, indent=2, default=str) + "\n")
    if args.no_markdown:
        return
    table = "\n".join(f"| {n} | {s:.1f} | {speed:.2f}x | {eff:.0%} |" for n, s, speed, eff in rows)
    chunks = best[nprocs[0]]["train_chunks"]
    section = f"""
## Index build sharded on torch.distributed (`model train --nproc N`) — {detail["started"]}

Command: `{command}` (wall time {detail["wall_s"]:.0f} s). Machine: {detail["machine"]["cpu"]}, nproc
{detail["machine"]["nproc"]}, torch {detail["machine"]["torch"]}, {detail["torch_threads"]} torch thread(s) per
process; load {load_start} at start, {detail["load_end"]} at end (shared by several sessions). Base `{args.base}`, the
demo corpus ({chunks} training chunks), `index_capture="pass"` so every chunk's gradient is in the sharded pass,
gloo on CPU. Time = the attribution artefacts of the run, including starting the helpers and loading the model in
them; best of {args.repeats}.

| processes | artefacts s | speed-up | efficiency |
| ---: | ---: | ---: | ---: |
{table}

Index files byte-identical across process counts: **{identical}**. On this 2-core shared machine about 1x is what
the hardware allows; the helpers' start-up (imports, model load) is paid once per run.
"""
    append_section(section)


if __name__ == "__main__":
    main()
