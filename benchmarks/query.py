"""Query latency of an ``AttributionIndex`` (memory-mapped safetensors) against a numpy matmul in RAM.

An index of ``--n`` contributions at ``--dim`` (random float32 features, fixed seed) is written to a temp dir
and opened fresh (memory-mapped); after a warmup, ``--reps`` single queries are timed for

- ``scores``: ``index.scores(q)`` (one query against every contribution),
- ``top_k``: ``index.top_k(q, k)`` (scores + top-k + id lookup),
- baseline: ``features_np @ q`` with the same features as a numpy array in RAM.

    .venv/bin/python benchmarks/query.py            # full run, appends to BENCHMARKS.md
    .venv/bin/python benchmarks/query.py --quick    # smoke run, writes benchmarks/results/query-quick.json only
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine

from attribution_oracle.attribution import AttributionIndex

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"


def latencies_ms(fn: Callable[[np.ndarray], Any], queries: np.ndarray, warmup: int) -> np.ndarray:
    """Time ``fn`` on each query (after ``warmup`` untimed calls); milliseconds per call."""
    for i in range(warmup):
        fn(queries[i % len(queries)])
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        fn(q)
        out[i] = (time.perf_counter() - start) * 1e3
    return out


def summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 10k contributions, 20 reps, no BENCHMARKS.md")
    p.add_argument("--n", type=int, default=100_000, help="contributions in the index")
    p.add_argument("--dim", type=int, default=512, help="feature dimension")
    p.add_argument("--k", type=int, default=100, help="top-k size")
    p.add_argument("--reps", type=int, default=200, help="timed queries per operation")
    p.add_argument("--warmup", type=int, default=20, help="untimed queries before timing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--goal-ms", type=float, default=20.0, help="p50 goal for scoring one query against all")
    p.add_argument("--json", type=Path, default=None, help="result file (default benchmarks/results/query.json)")
    p.add_argument("--markdown", type=Path, default=None, help="append a section here (default BENCHMARKS.md)")
    p.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.reps, args.warmup = 10_000, 20, 5
        args.json = args.json or RESULTS_DIR / "query-quick.json"
        args.no_markdown = args.no_markdown or args.markdown is None
    args.json = args.json or RESULTS_DIR / "query.json"
    args.markdown = args.markdown or ROOT / "BENCHMARKS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # AttributionIndex wraps a read-only np.memmap with torch.from_numpy, which warns once; it only reads it
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    wall = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    host = machine()
    rng = np.random.default_rng(args.seed)
    features_np = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.reps, args.dim), dtype=np.float32)
    ids = [f"c{i:07d}" for i in range(args.n)]

    with tempfile.TemporaryDirectory(prefix="attribution-index-") as tmp:
        path = Path(tmp) / "index"
        start = time.perf_counter()
        AttributionIndex.create(path, torch.from_numpy(features_np), ids, manifest={"benchmark": "query"})
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        index = AttributionIndex(path)  # opened fresh: the features are memory-mapped, not loaded
        open_s = time.perf_counter() - start

        # correctness first: the index must agree with the in-RAM matmul
        q0 = queries[0]
        expected = features_np @ q0
        got = index.scores(torch.from_numpy(q0))[0].numpy()
        max_abs_err = float(np.abs(got - expected).max())
        top = index.top_k(torch.from_numpy(q0), k=args.k)[0]
        scale = float(np.abs(expected).max())
        if max_abs_err > 1e-4 * scale or not np.allclose(
            top.scores, np.sort(expected)[::-1][: args.k], atol=1e-4 * scale
        ):
            raise SystemExit(f"index scores disagree with numpy (max abs error {max_abs_err:.3e})")

        scores_ms = latencies_ms(lambda q: index.scores(torch.from_numpy(q)), queries, args.warmup)
        topk_ms = latencies_ms(lambda q: index.top_k(torch.from_numpy(q), k=args.k), queries, args.warmup)
        # diagnostics: numpy's BLAS on the very same memory map, and torch on a batch of 8 queries (per query)
        mapped = index.matrix().numpy()
        mmap_np_ms = latencies_ms(lambda q: mapped @ q, queries, args.warmup)
        batch = torch.from_numpy(queries[:8])
        batch8_ms = latencies_ms(lambda _: index.scores(batch), queries, args.warmup) / len(batch)
    baseline_ms = latencies_ms(lambda q: features_np @ q, queries, args.warmup)
    wall = time.perf_counter() - wall
    host["loadavg_1m_end"] = round(os.getloadavg()[0], 2)

    s, t, b = summary(scores_ms), summary(topk_ms), summary(baseline_ms)
    mm, b8 = summary(mmap_np_ms), summary(batch8_ms)
    result = {
        "n": args.n,
        "dim": args.dim,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "baseline_p50_ms": b["p50_ms"],
        "topk_p50_ms": t["p50_ms"],
        "topk_p99_ms": t["p99_ms"],
        "baseline_p99_ms": b["p99_ms"],
        "k": args.k,
        "reps": args.reps,
        "ratio_p50_vs_baseline": s["p50_ms"] / b["p50_ms"],
        "goal_p50_ms": args.goal_ms,
        "goal_met": s["p50_ms"] <= args.goal_ms,
        "build_s": build_s,
        "open_s": open_s,
        "max_abs_err_vs_numpy": max_abs_err,
        "detail": {"scores": s, "top_k": t, "baseline": b, "numpy_on_index_mmap": mm, "scores_batch8_per_query": b8},
        "meta": {
            "command": " ".join([".venv/bin/python", "benchmarks/query.py", *map(shlex.quote, sys.argv[1:])]),
            "machine": host,
            "wall_seconds": wall,
        },
    }

    rows = [
        ("index.scores(q) (mmap)", s),
        (f"index.top_k(q, {args.k}) (mmap)", t),
        ("numpy features @ q (RAM)", b),
        ("diagnostic: numpy on the index's memmap", mm),
        ("diagnostic: index.scores(8 queries) / 8", b8),
    ]
    table = "\n".join(
        [
            "| operation | p50 ms | p99 ms | mean ms | min ms |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {name} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['mean_ms']:.2f} | {v['min_ms']:.2f} |"
                for name, v in rows
            ],
        ]
    )
    verdict = (
        f"scores p50 {s['p50_ms']:.2f} ms = {result['ratio_p50_vs_baseline']:.2f}x the numpy baseline "
        f"({b['p50_ms']:.2f} ms); goal p50 <= {args.goal_ms:g} ms: {'MET' if result['goal_met'] else 'NOT MET'}"
    )
    print(f"AttributionIndex query latency: n={args.n}, dim={args.dim}, {args.reps} reps after {args.warmup} warmup")
    print(table)
    print(verdict)
    print(f"build {build_s:.2f}s, open {open_s * 1e3:.1f} ms, max |index - numpy| = {max_abs_err:.2e}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_markdown:
        path: Path = args.markdown
        if not path.exists():
            path.write_text("# Benchmarks\n\nEach section is appended by the benchmark script named in its command.\n")
        section = f"""
## Attribution index query latency — {started.strftime("%Y-%m-%d %H:%M UTC")}

Machine: nproc={host["nproc"]}, torch {host["torch"]} ({host["torch_threads"]} threads), numpy {host["numpy"]},
{host["cpu"]}, Python {host["python"]};
1-min load average {host["loadavg_1m"]} at start, {host["loadavg_1m_end"]} at end.

Command: `{result["meta"]["command"]}`

n={args.n} contributions, dim={args.dim}, random float32 features (seed {args.seed}); index written to a temp dir
and opened fresh (memory-mapped); {args.reps} single queries timed after {args.warmup} warmup queries.

{table}

{verdict}. Build {build_s:.2f}s, open {open_s * 1e3:.1f} ms.
"""
        with path.open("a") as handle:
            handle.write(section)
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
