"""Query latency of an ``AttributionIndex`` (exact fixed-point scoring) against a float numpy matmul in RAM.

An index of ``--n`` contributions at ``--dim`` (random float32 features, fixed seed) is written to a temp dir
and opened fresh (memory-mapped); the first query quantises it (``attribution.fixed_point``, timed separately).
After a warmup, ``--reps`` rounds are timed, the operations interleaved within each round so that the shared
machine's load hits ours and the peers alike:

- ``scores``: ``index.scores(q)`` (one query against every contribution, exact integer accumulation),
- ``top_k``: ``index.top_k(q, k)`` (scores + deterministic top-k + id lookup),
- baseline: ``features_np @ q`` with the same features as a float32 numpy array in RAM (BLAS sgemv),
- batched: ``index.scores(Q)`` and ``features_np @ Q.T`` for 8 queries at once, reported per query.

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
from _common import load_line, machine

from attribution_oracle.attribution import AttributionIndex
from attribution_oracle.attribution.fixed_point import error_bound, pick_kernel, quantise, scores_float

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


def interleaved_ms(
    ops: dict[str, Callable[[np.ndarray], Any]], queries: np.ndarray, warmup: int
) -> dict[str, np.ndarray]:
    """Time every op on each query, the ops interleaved per query (after ``warmup`` untimed rounds); ms per call."""
    for i in range(warmup):
        for fn in ops.values():
            fn(queries[i % len(queries)])
    out = {name: np.empty(len(queries)) for name in ops}
    for i, q in enumerate(queries):
        for name, fn in ops.items():
            start = time.perf_counter()
            fn(q)
            out[name][i] = (time.perf_counter() - start) * 1e3
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
    uptime_start = load_line()
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
        start = time.perf_counter()
        index.fixed_point()  # quantised once, on the first query
        quantise_s = time.perf_counter() - start

        # correctness first: the index must agree with the in-RAM matmul
        q0 = queries[0]
        expected = features_np @ q0
        got = index.scores(torch.from_numpy(q0))[0].numpy()
        max_abs_err = float(np.abs(got - expected).max())
        bound = error_bound(torch.from_numpy(q0), index.matrix())[0].numpy()
        if not (np.abs(got - expected.astype(np.float64)) <= bound + 1e-5 * np.abs(expected).max()).all():
            raise SystemExit(f"index scores exceed the quantisation bound (max abs error {max_abs_err:.3e})")
        scale = float(np.abs(expected).max())
        top = index.top_k(torch.from_numpy(q0), k=args.k)[0]
        true_top = set(np.argsort(-expected)[: args.k].tolist())
        top_overlap = len(true_top & {int(i[1:]) for i in top.ids}) / args.k

        mapped = index.matrix().numpy()
        fixed = index.fixed_point()
        kernel = pick_kernel("cpu")
        batch_np = queries[:8]
        batch = torch.from_numpy(batch_np)
        timed = interleaved_ms(
            {
                "scores": lambda q: index.scores(torch.from_numpy(q)),
                "top_k": lambda q: index.top_k(torch.from_numpy(q), k=args.k),
                "baseline": lambda q: features_np @ q,
                "mmap_np": lambda q: mapped @ q,
                "scores_int_mm": lambda q: scores_float(quantise(torch.from_numpy(q)), fixed, kernel="int_mm"),
                "batch8": lambda _: index.scores(batch),
                "np_batch8": lambda _: features_np @ batch_np.T,
            },
            queries,
            args.warmup,
        )
        scores_ms, topk_ms, baseline_ms, mmap_np_ms = (timed[k] for k in ("scores", "top_k", "baseline", "mmap_np"))
        int_mm_ms = timed["scores_int_mm"]
        batch8_ms, np_batch8_ms = timed["batch8"] / len(batch), timed["np_batch8"] / len(batch)
    wall = time.perf_counter() - wall
    host["loadavg_1m_end"] = round(os.getloadavg()[0], 2)

    s, t, b = summary(scores_ms), summary(topk_ms), summary(baseline_ms)
    mm, b8, nb8 = summary(mmap_np_ms), summary(batch8_ms), summary(np_batch8_ms)
    im = summary(int_mm_ms)
    ratio_single = s["p50_ms"] / b["p50_ms"]
    speedup_batch = s["p50_ms"] / b8["p50_ms"]
    goal_single, goal_batch = ratio_single <= 1.0, speedup_batch >= 3.0
    result = {
        "n": args.n,
        "dim": args.dim,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "baseline_p50_ms": b["p50_ms"],
        "topk_p50_ms": t["p50_ms"],
        "topk_p99_ms": t["p99_ms"],
        "baseline_p99_ms": b["p99_ms"],
        "batch8_per_query_p50_ms": b8["p50_ms"],
        "numpy_batch8_per_query_p50_ms": nb8["p50_ms"],
        "kernel": kernel,
        "int_mm_kernel_p50_ms": im["p50_ms"],
        "k": args.k,
        "reps": args.reps,
        "ratio_p50_vs_baseline": ratio_single,
        "batch8_speedup_per_query_vs_single": speedup_batch,
        "goal_single_no_slower_than_numpy_met": goal_single,
        "goal_batch8_3x_met": goal_batch,
        "goal_met": goal_single and goal_batch,
        "build_s": build_s,
        "open_s": open_s,
        "quantise_s": quantise_s,
        "max_abs_err_vs_numpy": max_abs_err,
        "max_abs_err_relative_to_max_score": max_abs_err / scale,
        "top_k_overlap_with_float": top_overlap,
        "detail": {
            "scores": s,
            "top_k": t,
            "baseline": b,
            "numpy_on_index_mmap": mm,
            "scores_int_mm_kernel": im,
            "scores_batch8_per_query": b8,
            "numpy_batch8_per_query": nb8,
        },
        "meta": {
            "command": " ".join([".venv/bin/python", "benchmarks/query.py", *map(shlex.quote, sys.argv[1:])]),
            "machine": host,
            "uptime_start": uptime_start,
            "uptime_end": load_line(),
            "wall_seconds": wall,
        },
    }

    rows = [
        (f"ours: index.scores(q), exact 14-bit fixed point (2 int8 limbs), int32 accumulation, {kernel} kernel", s),
        ("ours, previous kernel: same scores with torch._int_mm", im),
        (f"ours: index.top_k(q, {args.k})", t),
        ("peer: numpy float32 features @ q (RAM, BLAS)", b),
        ("peer: numpy float32 on the index's memmap", mm),
        ("ours: index.scores(8 queries) / 8", b8),
        ("peer: numpy float32 features @ Q(8).T / 8", nb8),
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
        f"single query: ours p50 {s['p50_ms']:.2f} ms = {ratio_single:.2f}x plain float numpy ({b['p50_ms']:.2f} ms); "
        f"goal <= 1x: {'MET' if goal_single else 'MISSED'}. Batched: 8 queries at {b8['p50_ms']:.2f} ms per query = "
        f"{speedup_batch:.2f}x faster per query than one at a time; goal >= 3x: {'MET' if goal_batch else 'MISSED'}"
    )
    print(f"AttributionIndex query latency: n={args.n}, dim={args.dim}, {args.reps} reps after {args.warmup} warmup")
    print(table)
    print(verdict)
    print(
        f"build {build_s:.2f}s, open {open_s * 1e3:.1f} ms, quantise {quantise_s:.2f}s, max |ours - float| = "
        f"{max_abs_err:.2e} ({max_abs_err / scale:.1e} of the largest score), top-{args.k} overlap {top_overlap:.2f}"
    )

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

Load (`uptime`): start `{uptime_start}`; end `{result["meta"]["uptime_end"]}`.

n={args.n} contributions, dim={args.dim}, random float32 features (seed {args.seed}); index written to a temp dir
and opened fresh (memory-mapped), quantised on the first query ({quantise_s:.2f}s, then kept in memory as two
int8 limbs); {args.reps} rounds timed after {args.warmup} warmup rounds, the seven operations interleaved within
each round (the rows' oneDNN prepacking happens on the first query too, in the warmup). Ours is exact
(integer accumulation, identical on every machine/thread count; kernel `{kernel}`); the peer is float32 BLAS.

{table}

{verdict}. Build {build_s:.2f}s, open {open_s * 1e3:.1f} ms. Quantisation error vs the float product: max
{max_abs_err:.2e} = {max_abs_err / scale:.1e} of the largest |score|; top-{args.k} overlap with the float top-{args.k}
{top_overlap:.2f}.
"""
        with path.open("a") as handle:
            handle.write(section)
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
