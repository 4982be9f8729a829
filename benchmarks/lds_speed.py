"""Digits MLP: seconds and LDS of our influence estimator (exact GGN vs the sketched GGN) against tuned TRAK.

The setting, data, ground truth (cached by ``benchmarks/lds.py``), checkpoints and LDS are those of
``benchmarks/lds.py`` (MLP(64,128,10), 1000 train / 300 test, 100 half subsets x 3 seeds, C checkpoints). Each
round runs every method once, in turn (interleaved rounds, so the shared machine's load hits all alike); the
table shows each method's LDS (deterministic for a fixed seed) and its median seconds over the rounds:

- ``ours-ggn``: ``Attributor`` with ``curvature="ggn"`` (exact Gauss-Newton: one projected Jacobian row per class),
- ``ours-ggn-sketch-S``: ``curvature="ggn-sketch", curvature_samples=S`` (S random directions per example),
- ``trak-reg``: ``traker`` 0.3.2 with ``lambda_reg`` (10, the best of ``lds.py``'s sweep on the MLP) and
  ``trak``: the same without regularisation.

    .venv/bin/python benchmarks/lds_speed.py              # appends to BENCHMARKS.md
    .venv/bin/python benchmarks/lds_speed.py --rounds 1 --no-markdown
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lds as L  # noqa: I001 - the sibling benchmark script (its sys.path setup and helpers)
import torch
from _common import load_line, machine

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median seconds reported)")
    p.add_argument("--checkpoints", type=int, default=5)
    p.add_argument("--samples", default="1,2", help="curvature_samples of the sketched GGN")
    p.add_argument("--trak-lambda", type=float, default=10.0)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "lds-speed.json")
    p.add_argument("--no-markdown", action="store_true")
    args = p.parse_args(argv)
    started, uptime_start, wall = dt.datetime.now(dt.UTC), load_line(), time.perf_counter()
    base = L.parse_args(["--settings", "mlp"])
    torch.manual_seed(0)
    data = L.load_data(base.n_train, base.n_test, base.split_seed)
    setting = L.MLP(epochs=base.mlp_epochs)
    gt = L.ground_truth(setting, data, base.subsets, base.gt_seeds, base.subset_seed)
    n, c = len(data.y_train), args.checkpoints
    with L.num_threads(base.train_threads):
        ckpts = setting.train(data.x_train, data.y_train, torch.arange(n).expand(c, n), [1000 + i for i in range(c)])
    ctx = L.Context(setting, data, ckpts, [], torch.empty(0), None, gt)
    methods: dict[str, Any] = {"ours-ggn": lambda: L.run_ours(ctx, ckpts, curvature="ggn")[0]}
    for s in [int(v) for v in args.samples.split(",") if v.strip()]:
        methods[f"ours-ggn-sketch-{s}"] = lambda s=s: L.run_ours(
            ctx, ckpts, curvature="ggn-sketch", curvature_samples=s
        )[0]
    methods["trak-reg"] = lambda: L.run_traker(ctx, ckpts, 1024, lambda_reg=args.trak_lambda)
    methods["trak"] = lambda: L.run_traker(ctx, ckpts, 1024)
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    scores: dict[str, float] = {}
    for round_ in range(args.rounds):
        for name, run in methods.items():
            result = run()
            seconds[name].append(result.featurize_s + result.score_s)
            scores[name] = L.lds(result.scores, gt.masks, gt.target)
            print(f"round {round_}: {name:<20} LDS {scores[name]:.3f}  {seconds[name][-1]:.2f}s", flush=True)
    median = {m: statistics.median(v) for m, v in seconds.items()}
    peer = "trak-reg"
    rows = [
        f"| {m} | {scores[m]:.3f} | {scores[m] - scores[peer]:+.3f} | {median[m]:.2f} "
        f"| {median[m] / median[peer]:.2f}x |"
        for m in methods
    ]
    table = "\n".join(
        ["| method | LDS | vs trak-reg | median s | time / trak-reg |", "|---|---:|---:|---:|---:|", *rows]
    )
    verdicts = [
        f"{m}: LDS margin {scores[m] - scores[peer]:+.3f} "
        f"(goal >= +0.05 {'MET' if scores[m] - scores[peer] >= 0.05 else 'MISSED'}), "
        f"time {median[m] / median[peer]:.2f}x trak-reg ({'MET' if median[m] <= median[peer] else 'MISSED'})"
        for m in methods
        if m.startswith("ours")
    ]
    print(table)
    print("\n".join(verdicts))
    command = " ".join([".venv/bin/python", "benchmarks/lds_speed.py", *map(shlex.quote, sys.argv[1:])])
    wall = time.perf_counter() - wall
    result = {
        "setting": "mlp",
        "checkpoints": c,
        "lds": scores,
        "seconds": seconds,
        "median_seconds": median,
        "peer": peer,
        "trak_lambda": args.trak_lambda,
        "meta": {
            "command": command,
            "machine": machine(),
            "uptime_start": uptime_start,
            "uptime_end": load_line(),
            "wall_seconds": wall,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_markdown:
        section = f"""
## Digits MLP: sketched vs exact GGN vs tuned TRAK, seconds and LDS — {started.strftime("%Y-%m-%d %H:%M UTC")}

Command: `{command}`

Load (`uptime`): start `{uptime_start}`; end `{result["meta"]["uptime_end"]}` (2 shared cores; wall {wall:.0f}s).

MLP(64,128,10) on digits, 1000 train / 300 test, C={c} checkpoints, proj_dim 1024 for everyone, LDS against the
cached ground truth of `benchmarks/lds.py` (100 half subsets x 3 seeds); {args.rounds} interleaved round(s), median
seconds (featurize + score). trak-reg = traker with lambda_reg={args.trak_lambda:g}.

{table}

{chr(10).join("- " + v for v in verdicts)}
"""
        with (ROOT / "BENCHMARKS.md").open("a") as handle:
            handle.write(section)
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
