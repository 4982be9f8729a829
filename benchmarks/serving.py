"""OpenLoRA serving throughput: ours vs PEFT mixed-batch inference vs sequential adapter swapping.

    .venv/bin/python benchmarks/serving.py            # tiny + SmolLM2-135M, writes results, appends BENCHMARKS.md
    .venv/bin/python benchmarks/serving.py --quick    # smoke run (tiny only, 1 and 8 adapters), writes nothing

Workload, identical for the three systems: N distinct rank-8 LoRA adapters on q_proj/v_proj (random A and B),
max(64, N) requests, request i uses adapter i mod N, prompts of 8-24 random tokens (seeded), exactly G greedy
tokens each (no early stop), float32, 1 torch thread, batches of at most 64 requests.

- ours: ``BatchGenerator`` continuous batching (max_batch 64) with the multi-adapter LoRA pool, in its
  ``auto`` mode and, to choose that mode, forced ``gather`` and ``segment`` (all columns are printed);
- PEFT mixed: one ``PeftModel`` holding all N adapters, ``generate(..., adapter_names=[...])`` on batches of 64
  consecutive requests (left-padded), ``min_new_tokens = max_new_tokens = G``;
- sequential: the same ``PeftModel``; requests grouped by adapter, ``set_adapter`` then one ``generate`` per
  adapter over all of its requests (the fastest way to use ``set_adapter``: one swap per adapter, batched).

Also: cold-load latency of an adapter (blob read + sha256 check + unpack + slot copy, median over 16) and
bytes per adapter (its tensors). Results: benchmarks/results/serving.json (SmolLM2, the issue's schema),
benchmarks/results/serving.meta.json (tiny model, mode comparison, machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # noqa: E402

from attribution_oracle.models import load_base_model, unpack_adapter  # noqa: E402
from attribution_oracle.serving.adapter_cache import AdapterCache  # noqa: E402
from attribution_oracle.serving.engine import BatchGenerator, GenerationRequest  # noqa: E402
from attribution_oracle.serving.lora import LoraPool, LoraWeights  # noqa: E402
from attribution_oracle.serving.synthetic import random_adapter_blob  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402

RANK = 8
TARGETS = ("q_proj", "v_proj")
BATCH = 64


def workload(n_adapters: int, vocab: int, seed: int = 0) -> list[tuple[list[int], int]]:
    """(prompt ids, adapter index) per request."""
    gen = torch.Generator().manual_seed(seed)
    requests = []
    for i in range(max(BATCH, n_adapters)):
        length = int(torch.randint(8, 25, (1,), generator=gen))
        ids = torch.randint(0, min(vocab, 250), (length,), generator=gen).tolist()
        requests.append((ids, i % n_adapters))
    return requests


def make_blobs(spec: str, n: int) -> tuple[list[bytes], str]:
    base = load_base_model(spec)
    return [random_adapter_blob(base.model, base.sha256, RANK, TARGETS, seed=1000 + i) for i in range(n)], base.sha256


def run_ours(spec: str, blobs: list[bytes], requests, tokens: int, mode: str) -> tuple[float, list[list[int]]]:
    base = load_base_model(spec)
    weights = {str(i): LoraWeights.from_blob(str(i), unpack_adapter(b)) for i, b in enumerate(blobs)}
    pad = base.tokenizer.pad_token_id if base.tokenizer.pad_token_id is not None else base.tokenizer.eos_token_id
    pool = LoraPool(base.model, capacity=BATCH + 1, mode=mode)
    engine = BatchGenerator(base.model, pool, weights.__getitem__, pad_token_id=pad, max_batch=BATCH)
    warm = [engine.submit(GenerationRequest(list(ids), str(a), max_tokens=2)) for ids, a in requests[:4]]
    engine.run_until_idle()
    assert all(r.error is None for r in warm)
    started = time.perf_counter()
    done = [engine.submit(GenerationRequest(list(ids), str(a), max_tokens=tokens)) for ids, a in requests]
    engine.run_until_idle()
    elapsed = time.perf_counter() - started
    assert all(r.error is None and len(r.output_ids) == tokens for r in done)
    return len(requests) * tokens / elapsed, [r.output_ids for r in done]


def peft_model(spec: str, blobs: list[bytes]):
    base = load_base_model(spec)
    model = None
    for i, blob in enumerate(blobs):
        adapter = unpack_adapter(blob)
        config = LoraConfig(**adapter.lora_config)
        if model is None:
            model = get_peft_model(base.model, config, adapter_name=f"a{i}")
        else:
            model.add_adapter(f"a{i}", config)
        set_peft_model_state_dict(model, adapter.state_dict, adapter_name=f"a{i}")
    model.eval()
    return model, base.tokenizer


def _left_padded(batch: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


def _generate(model, batch: list[list[int]], tokens: int, pad: int, **kw) -> list[list[int]]:
    ids, mask = _left_padded(batch, pad)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        pad_token_id=pad,
        **kw,
    )
    return out[:, ids.shape[1] :].tolist()


def run_peft_mixed(model, tokenizer, requests, tokens: int) -> tuple[float, list[list[int]]]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    _generate(model, [requests[0][0]], 2, pad, adapter_names=["a0"])  # warm-up
    outputs: list[list[int]] = []
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(requests), BATCH):
            chunk = requests[start : start + BATCH]
            names = [f"a{a}" for _, a in chunk]
            outputs += _generate(model, [ids for ids, _ in chunk], tokens, pad, adapter_names=names)
    return len(requests) * tokens / (time.perf_counter() - started), outputs


def run_sequential(model, tokenizer, requests, tokens: int) -> tuple[float, list[list[int]]]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    groups: dict[int, list[int]] = {}
    for index, (_, adapter) in enumerate(requests):
        groups.setdefault(adapter, []).append(index)
    outputs: list[list[int] | None] = [None] * len(requests)
    started = time.perf_counter()
    with torch.inference_mode():
        for adapter, indices in groups.items():
            model.set_adapter(f"a{adapter}")
            for start in range(0, len(indices), BATCH):
                part = indices[start : start + BATCH]
                for index, out in zip(part, _generate(model, [requests[i][0] for i in part], tokens, pad), strict=True):
                    outputs[index] = out
    return len(requests) * tokens / (time.perf_counter() - started), outputs


def cold_load(spec: str, blobs: list[bytes], base_hash: str) -> tuple[float, int]:
    base = load_base_model(spec)
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp))
        hashes = [store.put_bytes(b) for b in blobs[:16]]
        cache = AdapterCache(store, base_hash)
        pool = LoraPool(base.model, capacity=BATCH + 1)
        times, sizes = [], []
        for digest in hashes:
            started = time.perf_counter()
            weights = cache.get(digest)
            pool.load(weights)
            times.append((time.perf_counter() - started) * 1000)
            sizes.append(weights.nbytes)
        cache.close()
    return statistics.median(times), int(statistics.median(sizes))


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Fraction of requests whose generated tokens are identical."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def bench_model(spec: str, counts: list[int], tokens: int, modes: list[str]) -> dict:
    results: dict = {}
    all_blobs, base_hash = make_blobs(spec, max(counts))
    for n in counts:
        blobs = all_blobs[:n]
        requests = workload(n, load_base_model(spec).model.config.vocab_size)
        row: dict = {}
        outs = {}
        for mode in modes:
            row[f"ours_{mode}_tok_s"], outs[mode] = run_ours(spec, blobs, requests, tokens, mode)
            print(f"  {spec} n={n} ours[{mode}] {row[f'ours_{mode}_tok_s']:.1f} tok/s", flush=True)
        row["ours_tok_s"] = row["ours_auto_tok_s"]
        model, tokenizer = peft_model(spec, blobs)
        row["peft_mixed_tok_s"], mixed = run_peft_mixed(model, tokenizer, requests, tokens)
        print(f"  {spec} n={n} peft mixed {row['peft_mixed_tok_s']:.1f} tok/s", flush=True)
        row["sequential_tok_s"], sequential = run_sequential(model, tokenizer, requests, tokens)
        print(f"  {spec} n={n} sequential {row['sequential_tok_s']:.1f} tok/s", flush=True)
        row["same_tokens_as_peft_mixed"] = agreement(outs["auto"], mixed)
        row["same_tokens_as_sequential"] = agreement(outs["auto"], sequential)
        row["peft_mixed_vs_sequential_same_tokens"] = agreement(mixed, sequential)
        del model
        results[str(n)] = row
    results["cold_load_ms"], results["bytes_per_adapter"] = cold_load(spec, all_blobs, base_hash)
    results["generated_tokens_per_request"] = tokens
    return results


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def table(name: str, results: dict, counts: list[int], modes: list[str]) -> list[str]:
    head = [
        "adapters",
        *[f"ours {m}" for m in modes],
        "PEFT mixed",
        "sequential",
        "ours/PEFT",
        "ours/seq",
        "same tokens",
        "PEFT vs seq same",
    ]
    lines = [f"**{name}** (tokens/s; G = {results['generated_tokens_per_request']} tokens per request)", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in counts:
        r = results[str(n)]
        cells = [str(n), *[f"{r[f'ours_{m}_tok_s']:.1f}" for m in modes], f"{r['peft_mixed_tok_s']:.1f}"]
        cells += [f"{r['sequential_tok_s']:.1f}", f"{r['ours_tok_s'] / r['peft_mixed_tok_s']:.2f}x"]
        cells += [f"{r['ours_tok_s'] / r['sequential_tok_s']:.2f}x", f"{r['same_tokens_as_peft_mixed']:.0%}"]
        cells.append(f"{r['peft_mixed_vs_sequential_same_tokens']:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"cold load {results['cold_load_ms']:.2f} ms, {results['bytes_per_adapter']} bytes per adapter", ""]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 and 8 adapters, writes nothing")
    p.add_argument("--tiny-tokens", type=int, default=32, help="generated tokens per request (tiny model)")
    p.add_argument("--smollm2-tokens", type=int, default=16, help="generated tokens per request (SmolLM2)")
    p.add_argument("--counts", default="1,8,64,256", help="adapter counts")
    p.add_argument("--skip-smollm2", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    modes = ["auto", "gather", "segment"]
    counts = [1, 8] if args.quick else [int(c) for c in args.counts.split(",")]
    started = datetime.now(UTC)
    info = machine()
    print(f"machine: {info}", flush=True)
    tiny = bench_model("tiny:0", counts, 4 if args.quick else args.tiny_tokens, modes)
    for line in table("tiny (2-layer Llama, hidden 64)", tiny, counts, modes):
        print(line)
    if args.quick:
        return
    smol = None
    if not args.skip_smollm2:
        smol = bench_model("smollm2", counts, args.smollm2_tokens, modes)
        for line in table("SmolLM2-135M", smol, counts, modes):
            print(line)
    info["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = ROOT / "benchmarks" / "results"
    main_result = smol or tiny
    schema = {
        str(n): {k: main_result[str(n)][k] for k in ("ours_tok_s", "peft_mixed_tok_s", "sequential_tok_s")}
        for n in counts
    }
    schema["cold_load_ms"] = main_result["cold_load_ms"]
    schema["bytes_per_adapter"] = main_result["bytes_per_adapter"]
    (out / "serving.json").write_text(json.dumps(schema, indent=2) + "\n")
    meta = {"machine": info, "smollm2": smol, "tiny": tiny, "rank": RANK, "targets": list(TARGETS), "batch": BATCH}
    (out / "serving.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    command = "PYTHONPATH=src .venv/bin/python benchmarks/serving.py " + " ".join(sys.argv[1:])
    lines = [
        "",
        f"## OpenLoRA serving throughput — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores shared with other sessions, torch {info['torch']} "
        f"with 1 thread, float32. Load before: `{info['uptime']}`; after: `{info['uptime_after']}`.",
        "",
        f"Workload: N rank-{RANK} adapters on {'/'.join(TARGETS)}, max(64, N) requests (request i uses adapter "
        "i mod N), prompts of 8-24 tokens, exactly G greedy tokens each, batches of at most 64. PEFT mixed = "
        "`generate(adapter_names=...)` with all adapters in one PeftModel; sequential = `set_adapter` then one "
        "batched `generate` per adapter (all of its requests). 'same tokens' = share of requests whose tokens "
        "equal PEFT mixed's.",
        "",
    ]
    if smol:
        lines += table("SmolLM2-135M", smol, counts, modes)
    lines += table("tiny (2-layer Llama, hidden 64)", tiny, counts, modes)
    with open(ROOT / "BENCHMARKS.md", "a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
