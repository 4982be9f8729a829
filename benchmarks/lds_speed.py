"""Digits MLP: seconds and LDS of our influence estimator against TRAK tuned over its projection and lambda_reg.

The setting, data, ground truth (cached by ``benchmarks/lds.py``), checkpoints and LDS are those of
``benchmarks/lds.py`` (MLP(64,128,10), 1000 train / 300 test, 100 half subsets x 3 seeds, C checkpoints shared by
every method). Each round runs every method once, in turn (interleaved rounds, the order reversed every other
round, so the shared machine's load hits all alike); the tables show each method's LDS (deterministic for a fixed
seed) and its median seconds (featurize + score) over the rounds. Methods:

- ``ours-k{K}-d{D}``: ``Attributor`` with the exact GGN curvature, ``proj_dim=K``, ``damping=D`` and
  ``factored=True`` (the dense projection computed from the linear layers' factors; the same features as the
  unfactored path up to float rounding),
  ``batch_size=--batch`` (256: fewer, larger kernels; with 2 threads on loaded cores every small kernel waits),
- ``ours-unfactored-k1024``: the same at K=1024 through the per-example-gradient path (the previous default),
- ``ours-sketch1-k1024``: the sketched GGN (one direction per example) through that path (the previous fast mode),
- ``ours-kronecker-k{K}``: the Kronecker (LoGra-style) projection, ``projection="kronecker"``,
- ``ours-graddot-k512``: plain gradient dot products (the naive baseline of gradient attribution),
- ``trak-k{K}-l{L}``: ``traker`` 0.3.2 with ``proj_dim=K``, ``lambda_reg=L``; ``trak-k512-l0`` is TRAK without
  regularisation (its naive form).

"Best TRAK" is the TRAK row of highest LDS; the verdict takes our fastest row whose LDS beats it by at least
``--margin`` and compares median seconds, and the per-round ratio (same round, so the same load).

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lds as L  # noqa: I001 - the sibling benchmark script (its sys.path setup and helpers)
import torch
from _common import append_section, load_line, machine

ROOT = Path(__file__).resolve().parent.parent


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def methods_of(args: argparse.Namespace, ctx: L.Context, ckpts: list[L.StateDict]) -> dict[str, tuple[dict, Callable]]:
    """``{name: (config, run)}`` for every method of the run."""

    def ours(**config: Any) -> Callable[[], L.Result]:
        return lambda: L.run_ours(ctx, ckpts, **config)[0]

    def trak(k: int, lam: float) -> Callable[[], L.Result]:
        return lambda: L.run_traker(ctx, ckpts, k, lambda_reg=lam)

    out: dict[str, tuple[dict, Callable]] = {}
    for k in _ints(args.ours_dims):
        for d in _floats(args.ours_dampings):
            config = {"curvature": "ggn", "proj_dim": k, "damping": d, "factored": True, "batch_size": args.batch}
            out[f"ours-k{k}-d{d:g}"] = (config, ours(**config))
    if not args.skip_unfactored:
        config = {"curvature": "ggn", "proj_dim": 1024, "damping": 0.3, "factored": False, "batch_size": 64}
        out["ours-unfactored-k1024"] = (config, ours(**config))
        config = {
            "curvature": "ggn-sketch",
            "curvature_samples": 1,
            "proj_dim": 1024,
            "damping": 0.3,
            "factored": False,
            "batch_size": 64,
        }
        out["ours-sketch1-k1024"] = (config, ours(**config))
    for k in _ints(args.kronecker_dims):
        config = {
            "curvature": "ggn",
            "proj_dim": k,
            "damping": 0.3,
            "projection": "kronecker",
            "batch_size": args.batch,
        }
        out[f"ours-kronecker-k{k}"] = (config, ours(**config))
    config = {"estimator": "graddot", "proj_dim": 512, "factored": True, "batch_size": args.batch}
    out["ours-graddot-k512"] = (config, ours(**config))
    for k in _ints(args.trak_dims):
        for lam in _floats(args.trak_lambdas):
            out[f"trak-k{k}-l{lam:g}"] = ({"proj_dim": k, "lambda_reg": lam}, trak(k, lam))
    out["trak-k512-l0"] = ({"proj_dim": 512, "lambda_reg": 0.0}, trak(512, 0.0))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median seconds reported)")
    p.add_argument("--checkpoints", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads for every method (1: see BENCHMARKS.md)")
    p.add_argument("--batch", type=int, default=256, help="batch_size of our factored / Kronecker rows")
    p.add_argument("--ours-dims", default="256,512,1024")
    p.add_argument("--ours-dampings", default="0.1,0.3")
    p.add_argument("--kronecker-dims", default="1024,2048")
    p.add_argument("--trak-dims", default="256,512,1024,2048")
    p.add_argument("--trak-lambdas", default="3,10,30", help="lds.py's sweep put the best at 10 (of 0.01..100)")
    p.add_argument("--skip-unfactored", action="store_true", help="leave out the slow unfactored and sketch rows")
    p.add_argument("--margin", type=float, default=0.05, help="the LDS margin over the best TRAK the goal needs")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "lds-speed.json")
    p.add_argument("--no-markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, uptime_start, wall = dt.datetime.now(dt.UTC), load_line(), time.perf_counter()
    base = L.parse_args(["--settings", "mlp"])
    torch.manual_seed(0)
    data = L.load_data(base.n_train, base.n_test, base.split_seed)
    setting = L.MLP(epochs=base.mlp_epochs)
    gt = L.ground_truth(setting, data, base.subsets, base.gt_seeds, base.subset_seed)
    n, c = len(data.y_train), args.checkpoints
    with L.num_threads(base.train_threads):
        ckpts = setting.train(data.x_train, data.y_train, torch.arange(n).expand(c, n), [1000 + i for i in range(c)])
    torch.set_num_threads(args.threads)
    ctx = L.Context(setting, data, ckpts, [], torch.empty(0), None, gt)
    methods = methods_of(args, ctx, ckpts)
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    scores: dict[str, float] = {}
    names = list(methods)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            result = methods[name][1]()
            seconds[name].append(result.featurize_s + result.score_s)
            scores[name] = L.lds(result.scores, gt.masks, gt.target)
            print(f"round {round_}: {name:<24} LDS {scores[name]:.3f}  {seconds[name][-1]:.2f}s", flush=True)
    summary = summarize(args, methods, seconds, scores)
    command = " ".join([".venv/bin/python", "benchmarks/lds_speed.py", *map(shlex.quote, sys.argv[1:])])
    wall = time.perf_counter() - wall
    result = {
        "setting": "mlp",
        "checkpoints": c,
        "threads": args.threads,
        "configs": {m: cfg for m, (cfg, _) in methods.items()},
        "lds": scores,
        "seconds": seconds,
        **{k: v for k, v in summary.items() if k != "markdown"},
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
    print(summary["markdown"])
    if not args.no_markdown:
        section = f"""
## Digits MLP speed: factored projection vs TRAK tuned over proj_dim, lambda — {started.strftime("%Y-%m-%d %H:%M UTC")}

Command: `{command}`

Load (`uptime`): start `{uptime_start}`; end `{result["meta"]["uptime_end"]}` (2 shared cores; wall {wall:.0f}s;
torch threads {args.threads} for every method).

MLP(64,128,10) on digits, 1000 train / 300 test, the same C={c} checkpoints for every method, LDS against the
cached ground truth of `benchmarks/lds.py` (100 half subsets x 3 seeds); {args.rounds} interleaved round(s) (order
reversed every other round), median and min seconds of featurize + score.

{summary["markdown"]}
"""
        append_section(section)
    print(f"results in {args.json}")
    return 0


def summarize(
    args: argparse.Namespace, methods: dict[str, tuple[dict, Callable]], seconds: dict[str, list[float]],
    scores: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    """The best TRAK, our fastest row with the margin, per-round ratios and the markdown tables."""
    median = {m: statistics.median(v) for m, v in seconds.items()}
    traks = [m for m in methods if m.startswith("trak")]
    peer = max(traks, key=lambda m: (round(scores[m], 3), -median[m]))
    qualifying = [m for m in methods if m.startswith("ours") and scores[m] - scores[peer] >= args.margin]
    chosen = min(qualifying, key=lambda m: median[m]) if qualifying else None
    per_round = [a / b for a, b in zip(seconds[chosen], seconds[peer], strict=True)] if chosen else []

    def row(m: str) -> str:
        config = ", ".join(f"{k}={v}" for k, v in methods[m][0].items())
        return (
            f"| {m} | {config} | {scores[m]:.3f} | {scores[m] - scores[peer]:+.3f} | {median[m]:.2f} "
            f"| {min(seconds[m]):.2f} | {median[m] / median[peer]:.2f}x |"
        )

    ordered = sorted(methods, key=lambda m: (not m.startswith("ours"), median[m]))
    table = "\n".join(
        [
            f"| method | config | LDS | vs best TRAK ({peer}) | median s | min s | time / best TRAK |",
            "|---|---|---:|---:|---:|---:|---:|",
            *[row(m) for m in ordered],
        ]
    )
    if chosen:
        verdict = (
            f"**Goal (ours at most best-tuned TRAK's seconds with LDS margin >= +{args.margin:g}): "
            f"{'MET' if median[chosen] <= median[peer] else 'MISSED'}.** Best TRAK: `{peer}` LDS {scores[peer]:.3f} "
            f"in {median[peer]:.2f} s (median). Our fastest row with the margin: `{chosen}` LDS {scores[chosen]:.3f} "
            f"({scores[chosen] - scores[peer]:+.3f}) in {median[chosen]:.2f} s = {median[chosen] / median[peer]:.2f}x "
            f"TRAK's seconds; per-round ratios {', '.join(f'{r:.2f}x' for r in per_round)}."
        )
    else:
        verdict = (
            f"**Goal MISSED:** no row of ours beats the best TRAK (`{peer}`, {scores[peer]:.3f}) by {args.margin:g}."
        )
    return {
        "median_seconds": median,
        "best_trak": peer,
        "chosen": chosen,
        "per_round_ratio": per_round,
        "goal_met": bool(chosen and median[chosen] <= median[peer]),
        "markdown": f"{table}\n\n{verdict}",
    }


if __name__ == "__main__":
    sys.exit(main())
