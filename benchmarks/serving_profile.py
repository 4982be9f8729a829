"""Where our serving engine's time goes at N adapters: a torch.profiler table of one ``benchmarks/serving.py`` pass.

The workload and engine are those of ``benchmarks/serving.py`` (``Ours``: the server's default base precision,
continuous batching, the multi-adapter LoRA pool in ``auto`` mode): max(64, N) requests, request i on adapter
i mod N, exactly ``--tokens`` greedy tokens each, one torch thread. One warm-up pass, then one profiled pass.
Operators are grouped into the parts the issue asks about: base matmuls (``aten::mm`` of the base linears and the
LM head), LoRA (``aten::bmm``/``index_select`` of the gathered adapters), attention (SDPA), dtype casts and cache
copies (``aten::copy_``/``_to_copy``/``cat``) and everything else (norms, activations, Python-driven small ops).

    .venv/bin/python benchmarks/serving_profile.py                  # SmolLM2, 64 adapters; appends to BENCHMARKS.md
    .venv/bin/python benchmarks/serving_profile.py --model tiny:0 --no-markdown
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

import serving  # noqa: E402
from _common import append_section, load_line, machine  # noqa: E402

PARTS = {
    "base matmuls (aten::mm)": ("aten::mm", "aten::addmm"),
    "LoRA (bmm, index_select)": ("aten::bmm", "aten::index_select"),
    "attention (SDPA)": (
        "aten::_scaled_dot_product_flash_attention_for_cpu",
        "aten::_scaled_dot_product_attention_math",
    ),
    "casts and cache copies (copy_, cat)": ("aten::copy_", "aten::cat"),
    "greedy choice (argmax)": ("aten::argmax",),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="base model spec (smollm2 or tiny:SEED)")
    p.add_argument("--adapters", type=int, default=64)
    p.add_argument("--tokens", type=int, default=8, help="generated tokens per request in the profiled pass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "serving-profile.json")
    p.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, uptime_start = datetime.now(UTC), load_line()
    blobs, _ = serving.make_blobs(args.model, args.adapters)
    ours = serving.Ours(args.model, blobs)
    config = getattr(ours.engine.model, "config", None)
    requests = serving.workload(args.adapters, int(getattr(config, "vocab_size", 250)))
    ours.run(requests, max(2, args.tokens // 2), "auto")  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = time.perf_counter()
        tokens_per_s, _ = ours.run(requests, args.tokens, "auto")
        wall = time.perf_counter() - wall
    events = prof.key_averages()
    total_us = sum(e.self_cpu_time_total for e in events)
    parts = {name: sum(e.self_cpu_time_total for e in events if e.key in keys) for name, keys in PARTS.items()}
    parts["everything else"] = total_us - sum(parts.values())
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    rows = [(name, us / 1e6, us / total_us) for name, us in parts.items()]
    table = "\n".join(
        [
            "| part | self CPU s | share |",
            "|---|---:|---:|",
            *[f"| {name} | {s:.2f} | {share:.1%} |" for name, s, share in rows],
        ]
    )
    ops = "\n".join(
        [
            "| operator | self CPU s | share | calls |",
            "|---|---:|---:|---:|",
            *[
                f"| `{e.key}` | {e.self_cpu_time_total / 1e6:.2f} | {e.self_cpu_time_total / total_us:.1%} "
                f"| {e.count} |"
                for e in top
            ],
        ]
    )
    command = " ".join([".venv/bin/python", "benchmarks/serving_profile.py", *map(shlex.quote, sys.argv[1:])])
    result = {
        "model": args.model,
        "adapters": args.adapters,
        "requests": len(requests),
        "tokens_per_request": args.tokens,
        "base_precision": ours.precision,
        "tokens_per_s_profiled": tokens_per_s,
        "wall_s": wall,
        "parts_s": {name: s for name, s, _ in rows},
        "parts_share": {name: share for name, _, share in rows},
        "top_ops": [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in top],
        "meta": {"command": command, "machine": machine(), "uptime_start": uptime_start, "uptime_end": load_line()},
    }
    print(f"{args.model}, {args.adapters} adapters, {len(requests)} requests x {args.tokens} tokens, base "
          f"{ours.precision}: {tokens_per_s:.1f} tok/s under the profiler")  # fmt: skip
    print(table)
    print(ops)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_markdown:
        section = f"""
## Serving profile: where the time goes at {args.adapters} adapters — {started.strftime("%Y-%m-%d %H:%M UTC")}

Command: `{command}`

Load (`uptime`): start `{uptime_start}`; end `{result["meta"]["uptime_end"]}`. {os.cpu_count()} cores shared.

{args.model}, {args.adapters} rank-8 adapters, {len(requests)} requests x {args.tokens} greedy tokens, our engine
as `benchmarks/serving.py` runs it (base precision `{ours.precision}`, LoRA mode auto), {args.threads} torch
thread(s), one profiled pass after a warm-up ({tokens_per_s:.1f} tok/s under the profiler).

{table}

{ops}
"""
        append_section(section)
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
