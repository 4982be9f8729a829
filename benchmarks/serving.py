"""OpenLoRA serving throughput: ours vs PEFT mixed-batch inference vs sequential adapter swapping.

    .venv/bin/python benchmarks/serving.py            # tiny + SmolLM2-135M, writes results, appends BENCHMARKS.md
    .venv/bin/python benchmarks/serving.py --quick    # smoke run (tiny only, 1 and 8 adapters), writes nothing

Workload, identical for the three systems: N distinct rank-8 LoRA adapters on q_proj/v_proj (random A and B),
max(64, N) requests, request i uses adapter i mod N, prompts of 8-24 random tokens (seeded), exactly G greedy
tokens each (the generation config's stop ids forbidden until G, HF's ``min_new_tokens`` rule, for every system),
float32, the same torch threads (``--threads``, 1 by default) and batches of at most 64 requests for every system.
Every system runs one full batch first (warm-up); then ``--repeats`` interleaved rounds, the median is reported.

- ours: ``BatchGenerator`` continuous batching (max_batch 64) with the multi-adapter LoRA pool, in its
  ``auto`` mode and, to choose that mode, forced ``gather`` and ``segment`` (all columns are printed; one
  engine, the mode switched between runs);
- PEFT mixed: one ``PeftModel`` holding all N adapters, ``generate(..., adapter_names=[...])`` on batches of 64
  consecutive requests (left-padded), ``min_new_tokens = max_new_tokens = G``;
- sequential: the same ``PeftModel``; requests grouped by adapter, ``set_adapter`` then one ``generate`` per
  adapter over all of its requests (the fastest way to use ``set_adapter``: one swap per adapter, batched);
- base only: the same batches through HF ``generate`` on the bare base model (the ceiling of any LoRA server
  built on the same forward).

Token agreement: ours' and PEFT mixed's tokens are compared per request; where they differ, PEFT's top-2 logit
gap (stop ids forbidden) at the first differing step tells a float near-tie (< EPS) from a real difference.

Also: cold-load latency of an adapter (blob read + sha256 check + unpack + slot copy, median over 16) and
bytes per adapter (its tensors). Results: benchmarks/results/serving.json (SmolLM2, the issue's schema),
benchmarks/results/serving.meta.json (tiny model, mode comparison, machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "unit" / "serving")]  # random_adapters: test scaffolding

from _common import append_section, machine  # noqa: E402
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # noqa: E402
from random_adapters import random_adapter_blob  # noqa: E402

from attribution_oracle.models import load_base_model, unpack_adapter  # noqa: E402
from attribution_oracle.serving.adapter_cache import AdapterCache  # noqa: E402
from attribution_oracle.serving.continuous_batching import BatchGenerator, GenerationRequest  # noqa: E402
from attribution_oracle.serving.multi_lora import LoraPool, LoraWeights  # noqa: E402
from attribution_oracle.serving.quantised import quantise_base  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402

RANK = 8
TARGETS = ("q_proj", "v_proj")
BATCH = 64
EPS = 1e-3  # a top-2 logit gap below this is a float near-tie


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


class Ours:
    """Our engine over one base model; the LoRA mode is switched between runs (it is read at every forward)."""

    def __init__(self, spec: str, blobs: list[bytes], precision: str = "auto") -> None:
        base = load_base_model(spec)
        self.precision = quantise_base(base.model, precision, base.tokenizer)  # what the server does
        self.weights = {str(i): LoraWeights.from_blob(str(i), unpack_adapter(b)) for i, b in enumerate(blobs)}
        tok = base.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pool = LoraPool(base.model, capacity=BATCH + 1)
        self.engine = BatchGenerator(base.model, self.pool, self.weights.__getitem__, pad_token_id=pad, max_batch=BATCH)
        self.stops = hf_stop_ids(base.model)

    def run(self, requests, tokens: int, mode: str) -> tuple[float, list[list[int]]]:
        """Tokens/s of one pass over ``requests`` (exactly ``tokens`` each: stop ids forbidden, as min_new_tokens)."""
        self.pool.mode = mode
        started = time.perf_counter()
        done = [
            self.engine.submit(
                GenerationRequest(list(ids), str(a), max_tokens=tokens, min_tokens=tokens, stop_token_ids=self.stops)
            )
            for ids, a in requests
        ]
        self.engine.run_until_idle()
        elapsed = time.perf_counter() - started
        assert all(r.error is None and len(r.output_ids) == tokens for r in done)
        return len(requests) * tokens / elapsed, [r.output_ids for r in done]


def hf_stop_ids(model) -> frozenset[int]:
    """The ids ``generate`` stops at (and ``min_new_tokens`` forbids): the generation config's eos_token_id."""
    eos = model.generation_config.eos_token_id
    return frozenset([] if eos is None else [eos] if isinstance(eos, int) else eos)


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


def _generate(model, batch: list[list[int]], tokens: int, pad: int, gaps: list | None = None, **kw) -> list[list[int]]:
    """Greedy ``generate`` of exactly ``tokens`` new tokens; with ``gaps``, append each row's per-step top-2 gap."""
    ids, mask = _left_padded(batch, pad)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        pad_token_id=pad,
        output_logits=gaps is not None,
        return_dict_in_generate=True,
        **kw,
    )
    if gaps is not None:
        forbidden = sorted(hf_stop_ids(model))
        steps = []
        for logits in out.logits:  # raw logits; min_new_tokens forbids the stop ids: so do we here
            logits = logits.float().clone()
            logits[:, forbidden] = float("-inf")
            top2 = logits.topk(2, dim=-1).values
            steps.append(top2[:, 0] - top2[:, 1])
        gaps += torch.stack(steps, dim=1).tolist()
    return out.sequences[:, ids.shape[1] :].tolist()


def run_peft_mixed(model, pad: int, requests, tokens: int, gaps: list | None = None) -> tuple[float, list[list[int]]]:
    outputs: list[list[int]] = []
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(requests), BATCH):
            chunk = requests[start : start + BATCH]
            names = [f"a{a}" for _, a in chunk]
            outputs += _generate(model, [ids for ids, _ in chunk], tokens, pad, gaps, adapter_names=names)
    return len(requests) * tokens / (time.perf_counter() - started), outputs


def run_sequential(model, pad: int, requests, tokens: int, only: int | None = None) -> tuple[float, list]:
    """``set_adapter`` then one batched generate per adapter; ``only``: just that adapter's group (warm-up)."""
    groups: dict[int, list[int]] = {}
    for index, (_, adapter) in enumerate(requests):
        groups.setdefault(adapter, []).append(index)
    if only is not None:
        groups = {only: groups[only]}
    outputs: list[list[int] | None] = [None] * len(requests)
    count = 0
    started = time.perf_counter()
    with torch.inference_mode():
        for adapter, indices in groups.items():
            model.set_adapter(f"a{adapter}")
            for start in range(0, len(indices), BATCH):
                part = indices[start : start + BATCH]
                count += len(part)
                for index, out in zip(part, _generate(model, [requests[i][0] for i in part], tokens, pad), strict=True):
                    outputs[index] = out
    return count * tokens / (time.perf_counter() - started), outputs


def run_base_only(model, pad: int, requests, tokens: int) -> float:
    """The same batches through the base model alone (no adapter): the ceiling of any LoRA server on HF's forward."""
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(requests), BATCH):
            _generate(model, [ids for ids, _ in requests[start : start + BATCH]], tokens, pad)
    return len(requests) * tokens / (time.perf_counter() - started)


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


def divergences(ours: list[list[int]], peft: list[list[int]], gaps: list[list[float]]) -> dict:
    """Per request that differs: PEFT's top-2 logit gap at the first differing step; near-ties are gaps < EPS."""
    found = []
    for o, m, g in zip(ours, peft, gaps, strict=True):
        if o != m:
            k = next(i for i, (x, y) in enumerate(zip(o, m, strict=True)) if x != y)
            found.append(g[k])
    return {
        "differ": len(found),
        "near_ties": sum(gap < EPS for gap in found),
        "max_gap_at_divergence": max(found, default=None),
        "eps": EPS,
    }


def held_out_perplexity(spec: str, precision: str, window: int = 512) -> tuple[float, int]:
    """Perplexity of the base model (``quantise_base(precision)``) on held-out text: the demo corpus."""
    import math

    base = load_base_model(spec)
    quantise_base(base.model, precision, base.tokenizer)
    text = "\n\n".join(p.read_text() for p in sorted((ROOT / "demo" / "corpus").glob("*/*")) if p.is_file())
    ids = base.tokenizer(text, return_tensors="pt").input_ids
    nll, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, ids.shape[1] - 1, window):
            chunk = ids[:, start : start + window + 1]
            if chunk.shape[1] < 2:
                break
            logits = base.model(chunk[:, :-1]).logits.float()[0]
            nll += float(torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum"))
            count += chunk.shape[1] - 1
    return math.exp(nll / count), count


def bench_model(
    spec: str, counts: list[int], tokens: int, modes: list[str], repeats: int, seq_repeats: int, precision: str = "auto"
) -> dict:
    results: dict = {}
    all_blobs, base_hash = make_blobs(spec, max(counts))
    base = load_base_model(spec)
    pad = base.tokenizer.pad_token_id if base.tokenizer.pad_token_id is not None else base.tokenizer.eos_token_id
    for n in counts:
        blobs = all_blobs[:n]
        requests = workload(n, base.model.config.vocab_size)
        ours = Ours(spec, blobs, precision)
        exact = Ours(spec, blobs, "none") if ours.precision != "none" else None  # float32: the PEFT-parity path
        model, _ = peft_model(spec, blobs)
        model16 = peft_model(spec, blobs)[0].to(torch.bfloat16) if exact is not None else None  # the peer in bf16
        # full-batch warm-up of every system; ours' and PEFT mixed's warm-up outputs are the compared tokens
        _, ours_tokens = ours.run(requests, tokens, "auto")
        exact_tokens = exact.run(requests, tokens, "auto")[1] if exact is not None else ours_tokens
        if model16 is not None:
            run_peft_mixed(model16, pad, requests[:BATCH], tokens)
        for mode in modes[1:]:
            ours.run(requests[:BATCH], tokens, mode)
        gaps: list[list[float]] = []
        _, mixed = run_peft_mixed(model, pad, requests, tokens, gaps)
        run_sequential(model, pad, requests, tokens, only=0)
        run_base_only(base.model, pad, requests[:BATCH], tokens)
        times: dict[str, list[float]] = {}
        for rep in range(repeats):  # interleaved rounds: each system once per round
            for mode in modes:
                rate, out = ours.run(requests, tokens, mode)
                times.setdefault(f"ours_{mode}_tok_s", []).append(rate)
                assert mode != "auto" or out == ours_tokens, "ours is not deterministic"
            if exact is not None:
                rate, out = exact.run(requests, tokens, "auto")
                times.setdefault("ours_float32_tok_s", []).append(rate)
                rate, _ = run_peft_mixed(model16, pad, requests, tokens)
                times.setdefault("peft_mixed_bf16_tok_s", []).append(rate)
            rate, out = run_peft_mixed(model, pad, requests, tokens)
            times.setdefault("peft_mixed_tok_s", []).append(rate)
            assert out == mixed, "PEFT mixed is not deterministic"
            if rep < seq_repeats:
                rate, sequential = run_sequential(model, pad, requests, tokens)
                times.setdefault("sequential_tok_s", []).append(rate)
            times.setdefault("base_only_tok_s", []).append(run_base_only(base.model, pad, requests, tokens))
            print(f"  {spec} n={n} round {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in times.items()))
        row: dict = {key: statistics.median(values) for key, values in times.items()}
        row["runs"] = times
        row["ours_tok_s"] = row["ours_auto_tok_s"]
        row["base_precision"] = ours.precision
        row["peer_best_mixed_tok_s"] = max(row["peft_mixed_tok_s"], row.get("peft_mixed_bf16_tok_s", 0.0))
        row["float32_same_tokens_as_peft_mixed"] = agreement(exact_tokens, mixed)
        row["float32_divergences"] = divergences(exact_tokens, mixed, gaps)
        row["same_tokens_as_peft_mixed"] = agreement(ours_tokens, mixed)
        row["same_tokens_as_sequential"] = agreement(ours_tokens, sequential)
        row["peft_mixed_vs_sequential_same_tokens"] = agreement(mixed, sequential)
        row["divergences"] = divergences(ours_tokens, mixed, gaps)
        del model, ours, exact, model16
        results[str(n)] = row
    results["cold_load_ms"], results["bytes_per_adapter"] = cold_load(spec, all_blobs, base_hash)
    precision = Ours(spec, all_blobs[:1], precision).precision
    if precision != "none":
        float_ppl, n_tokens = held_out_perplexity(spec, "none")
        low_ppl, _ = held_out_perplexity(spec, precision)
        results["perplexity"] = {"precision": precision, "float32": float_ppl, precision: low_ppl,
                                 "change": low_ppl / float_ppl - 1, "tokens": n_tokens}  # fmt: skip
    results["generated_tokens_per_request"] = tokens
    return results


def table(name: str, results: dict, counts: list[int], modes: list[str]) -> list[str]:
    low = any("ours_float32_tok_s" in results[str(n)] for n in counts)
    head = [
        "adapters",
        *[f"ours {m}" for m in modes],
        *(["ours float32 base", "PEFT mixed bf16"] if low else []),
        "PEFT mixed",
        "sequential",
        "base only",
        "ours/best PEFT mixed",
        "ours/seq",
        "same tokens",
        "differ (near-ties)",
        *(["float32 path same tokens"] if low else []),
        "PEFT vs seq same",
    ]
    lines = [
        f"**{name}** (tokens/s, median of the rounds; G = {results['generated_tokens_per_request']} tokens per request)"
    ]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in counts:
        r = results[str(n)]
        cells = [str(n), *[f"{r[f'ours_{m}_tok_s']:.1f}" for m in modes]]
        if low:
            cells += [f"{r['ours_float32_tok_s']:.1f}", f"{r['peft_mixed_bf16_tok_s']:.1f}"]
        cells += [f"{r['peft_mixed_tok_s']:.1f}", f"{r['sequential_tok_s']:.1f}", f"{r['base_only_tok_s']:.1f}"]
        best = max(r["peft_mixed_tok_s"], r.get("peft_mixed_bf16_tok_s", 0.0))
        cells += [f"{r['ours_tok_s'] / best:.2f}x", f"{r['ours_tok_s'] / r['sequential_tok_s']:.2f}x"]
        d = r["divergences"]
        cells += [f"{r['same_tokens_as_peft_mixed']:.0%}", f"{d['differ']} ({d['near_ties']})"]
        if low:
            f = r["float32_divergences"]
            same = r["float32_same_tokens_as_peft_mixed"]
            cells.append(f"{same:.0%} ({f['differ']} differ, {f['near_ties']} near-ties)")
        cells.append(f"{r['peft_mixed_vs_sequential_same_tokens']:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"cold load {results['cold_load_ms']:.2f} ms, {results['bytes_per_adapter']} bytes per adapter", ""]
    if "perplexity" in results:
        ppl = results["perplexity"]
        lines += [
            f"Base precision of ours: {ppl['precision']} linears (LoRA deltas float32). Held-out perplexity (demo "
            f"corpus, {ppl['tokens']} tokens): float32 {ppl['float32']:.4f}, {ppl['precision']} "
            f"{ppl[ppl['precision']]:.4f} ({ppl['change']:+.2%}; goal <= +2%).",
            "",
        ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 and 8 adapters, writes nothing")
    p.add_argument("--tiny-tokens", type=int, default=32, help="generated tokens per request (tiny model)")
    p.add_argument("--smollm2-tokens", type=int, default=16, help="generated tokens per request (SmolLM2)")
    p.add_argument("--counts", default="1,8,64,256", help="adapter counts")
    p.add_argument("--repeats", type=int, default=3, help="interleaved measurement rounds (the median is reported)")
    p.add_argument(
        "--seq-repeats", type=int, default=3, help="SmolLM2 rounds that also time sequential swapping (slow)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads, the same for every system")
    p.add_argument("--smollm2-modes", default="auto", help="our LoRA modes timed on SmolLM2 (all three on tiny)")
    p.add_argument("--skip-smollm2", action="store_true")
    p.add_argument(
        "--ours-precision", default="auto", choices=["auto", "bf16", "int8", "none"], help="ours' --base-precision"
    )
    p.add_argument("--skip-tiny", action="store_true", help="time SmolLM2 only (tiny still runs with --quick)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    modes = ["auto", "gather", "segment"]
    counts = [1, 8] if args.quick else [int(c) for c in args.counts.split(",")]
    repeats, seq_repeats = (1, 1) if args.quick else (args.repeats, min(args.seq_repeats, args.repeats))
    started = datetime.now(UTC)
    info = machine()
    print(f"machine: {info}", flush=True)
    tiny = None
    if args.quick or not args.skip_tiny:
        tiny = bench_model("tiny:0", counts, 4 if args.quick else args.tiny_tokens, modes, repeats, repeats)
        for line in table("tiny (2-layer Llama, hidden 64)", tiny, counts, modes):
            print(line)
    if args.quick:
        return
    smol = None
    if not args.skip_smollm2:
        smol_modes = ["auto", *[m for m in args.smollm2_modes.split(",") if m != "auto"]]
        smol = bench_model(
            "smollm2", counts, args.smollm2_tokens, smol_modes, repeats, seq_repeats, args.ours_precision
        )
        for line in table("SmolLM2-135M", smol, counts, smol_modes):
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
    if "perplexity" in main_result:
        schema["perplexity"] = main_result["perplexity"]
    (out / "serving.json").write_text(json.dumps(schema, indent=2) + "\n")
    meta = {
        "machine": info,
        "smollm2": smol,
        "tiny": tiny,
        "rank": RANK,
        "targets": list(TARGETS),
        "batch": BATCH,
        "repeats": repeats,
        "seq_repeats_smollm2": seq_repeats,
    }
    (out / "serving.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    command = "PYTHONPATH=src .venv/bin/python benchmarks/serving.py " + " ".join(sys.argv[1:])
    precision = (main_result.get("perplexity") or {}).get("precision", "float32")
    base_name = {"bf16": "bfloat16", "int8": "int8"}.get(precision, precision)
    lines = [
        "",
        f"## OpenLoRA serving throughput, {base_name} base — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores shared with other sessions, torch {info['torch']} "
        f"with {args.threads} thread(s) for every system; float32 except where a column says otherwise (ours: "
        "the server's default base precision, `quantise_base(auto)`; PEFT mixed bf16: the whole PeftModel in "
        f"bfloat16). Load before: `{info['uptime']}`; "
        f"after: `{info['uptime_after']}`.",
        "",
        f"Workload: N rank-{RANK} adapters on {'/'.join(TARGETS)}, max(64, N) requests (request i uses adapter "
        f"i mod N), prompts of 8-24 tokens, exactly G greedy tokens each for every system (the stop ids of the "
        f"generation config forbidden until G: `min_new_tokens = max_new_tokens = G` for PEFT, `min_tokens = "
        f"max_tokens = G` for ours), batches of at most {BATCH} for every system. Every system first runs one "
        f"full batch (warm-up), then {repeats} interleaved rounds (on SmolLM2, sequential timed in {seq_repeats} "
        "of them); "
        "the median is shown. PEFT mixed = `generate(adapter_names=...)` with all adapters in one PeftModel; "
        "sequential = `set_adapter` then one batched `generate` per adapter (all of its requests); base only = "
        "the same batches through HF `generate` on the base model without adapters (the ceiling of a LoRA "
        "server on the same forward). ours/best PEFT mixed divides by the faster of PEFT float32 and bfloat16. "
        "'same tokens' = share of requests whose tokens equal PEFT mixed's (float32); 'float32 path' = ours with "
        "`--base-precision none`, the PEFT-parity path; "
        f"'differ (near-ties)' = requests that differ and, of them, those whose first differing step has a top-2 "
        f"logit gap in PEFT's own run below {EPS:g}.",
        "",
    ]
    if smol:
        lines += table("SmolLM2-135M", smol, counts, smol_modes)
    if tiny:
        lines += table("tiny (2-layer Llama, hidden 64)", tiny, counts, modes)
    append_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
