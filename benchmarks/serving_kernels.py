"""Can an int8 base make serving 3x PEFT? The base model's linears in float32, bfloat16 and int8, side by side.

Serving is bound by the base model's matmuls (``benchmarks/serving_profile.py``: 64% of the engine's CPU time with
the bfloat16 base). Issue 16 asks for 3x PEFT mixed-batch at 64 adapters on SmolLM2; the last runs gave 1.8-2.2x
with the bfloat16 base, so the base's linears would have to run about 1.4-1.7x faster than bfloat16 at the same
perplexity (at most 2% worse than float32). This script measures the one fast int8 path torch has on this CPU,
oneDNN's ``qlinear_pointwise`` (int8 weights per output channel, uint8 activations quantised per call with one
scale per tensor, int32 accumulation, VNNI), on the model itself:

- **speed**: every linear of SmolLM2 (the LM head included) on the same real activations, float32 (``F.linear``, the
  PEFT path) / bfloat16 (``serving.quantised``, ours) / int8 (activation quantisation included in the time), at
  M = 64 rows (a decode step of 64 requests) and M = 1024 rows (a prefill), interleaved rounds, one thread;
- **quality**: held-out perplexity of the whole model on the demo corpus with every linear but the LM head in int8,
  plain and with SmoothQuant-style smoothing (per input channel ``s = max|x|^a / max|w|^(1-a)``, calibrated on the
  first half of the corpus, evaluated on the second; here applied as a multiply inside the layer, which a real
  kernel would fold into the preceding norm).

It prints the projected whole-engine speed-up: with a share ``p`` of the time in base matmuls and those ``r`` times
faster, ``1 / ((1 - p) + p / r)``.

    .venv/bin/python benchmarks/serving_kernels.py               # appends to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "src")]

from _common import append_section, load_line, machine  # noqa: E402

from attribution_oracle.models.base import load_base_model  # noqa: E402

MATMUL_SHARE = 0.639  # base matmuls' share of the engine's CPU time (serving_profile, SmolLM2, 64 adapters, bf16)


def _quantise_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = weight.abs().amax(1).clamp_min(1e-12) / 127
    return torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8), scale.float()


class Int8Linear(nn.Module):
    """``F.linear`` through oneDNN's int8 GEMM: per-channel int8 weights, per-call per-tensor uint8 activations."""

    def __init__(self, linear: nn.Linear, smooth: torch.Tensor | None = None, per_token: bool = False) -> None:
        """Quantise ``linear`` (with ``smooth``, the input channels are divided by it and the weight's multiplied;
        ``per_token``: each activation row gets its own symmetric scale, applied to the output row afterwards)."""
        super().__init__()
        weight = linear.weight.detach().float()
        self.smooth, self.per_token = smooth, per_token
        if smooth is not None:
            weight = weight * smooth[None, :]
        qweight, self.w_scale = _quantise_weight(weight)
        self.packed = torch.ops.onednn.qlinear_prepack(qweight, None)
        self.zeros = torch.zeros(weight.shape[0], dtype=torch.int64)
        self.bias = None if linear.bias is None else linear.bias.detach().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` with int8 arithmetic (the activation quantisation is part of the cost)."""
        shape = x.shape
        x = x.reshape(-1, shape[-1]).float()
        if self.smooth is not None:
            x = x / self.smooth
        if self.per_token:  # symmetric per row, as uint8 with zero point 128; the row scales multiply the output
            rows = x.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
            qx = (torch.round(x / rows) + 128).to(torch.uint8)
            out = torch.ops.onednn.qlinear_pointwise(
                qx, 1.0, 128, self.packed, self.w_scale, self.zeros, None, 1.0, 0, torch.float32, "none", [], ""
            )  # fmt: skip
            out = out * rows
            out = out if self.bias is None else out + self.bias
            return out.reshape(*shape[:-1], -1)
        low, high = float(x.min()), float(x.max())
        low, high = min(low, 0.0), max(high, 0.0)
        scale = max(high - low, 1e-12) / 255
        zero = int(round(-low / scale))
        qx = torch.clamp(torch.round(x / scale) + zero, 0, 255).to(torch.uint8)
        out = torch.ops.onednn.qlinear_pointwise(
            qx, scale, zero, self.packed, self.w_scale, self.zeros, self.bias, 1.0, 0, torch.float32, "none", [], ""
        )  # fmt: skip
        return out.reshape(*shape[:-1], -1)


class Bf16Linear(nn.Module):
    """The bfloat16 base linear of ``serving.quantised`` (cast in, bfloat16 matmul, cast out)."""

    def __init__(self, linear: nn.Linear) -> None:
        """Keep ``linear``'s weight in bfloat16."""
        super().__init__()
        self.weight = linear.weight.detach().to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` in bfloat16, returned in float32."""
        return F.linear(x.to(torch.bfloat16), self.weight).float()


def _corpus_ids(tokenizer) -> torch.Tensor:
    text = "\n\n".join(p.read_text() for p in sorted((ROOT / "demo" / "corpus").glob("*/*")) if p.is_file())
    return tokenizer(text, return_tensors="pt").input_ids[0]


def _linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def _capture_inputs(model: nn.Module, ids: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Each linear's input rows (``[tokens, in]``) on ``ids``: real activations for timing and calibration."""
    seen: dict[str, torch.Tensor] = {}
    modules = _linears(model)
    hooks = [
        modules[n].register_forward_hook(lambda _m, args, _o, n=n: seen.__setitem__(n, args[0].detach()[0]))
        for n in names
    ]
    with torch.inference_mode():
        model(ids[None])
    for hook in hooks:
        hook.remove()
    return seen


def _swap(model: nn.Module, make) -> dict[str, nn.Module]:
    """Replace every linear but the LM head by ``make(name, linear)``; returns the originals to put back."""
    originals = {}
    for name, linear in _linears(model).items():
        if name == "lm_head":
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        originals[name] = linear
        setattr(parent, child, make(name, linear))
    return originals


def _restore(model: nn.Module, originals: dict[str, nn.Module]) -> None:
    for name, linear in originals.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, linear)


def _perplexity(model: nn.Module, ids: torch.Tensor, window: int = 512) -> float:
    nll, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start : start + window + 1]
            if len(chunk) < 2:
                break
            logits = model(chunk[None, :-1]).logits.float()[0]
            nll += float(F.cross_entropy(logits, chunk[1:], reduction="sum"))
            count += len(chunk) - 1
    return math.exp(nll / count)


def _smoothing(inputs: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    act = inputs.abs().amax(0).clamp_min(1e-5)
    wmax = weight.detach().abs().amax(0).clamp_min(1e-5)
    return (act**alpha / wmax ** (1 - alpha)).clamp_min(1e-5)


def _time(fn, rounds: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds * 1e3


def main(argv: list[str] | None = None) -> int:
    """Run the kernel timings and the perplexities, print the tables, write the JSON, append to BENCHMARKS.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median shown)")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.5, 0.8], help="SmoothQuant migration strengths")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "serving-kernels.json")
    p.add_argument("--no-markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started, uptime_start = datetime.now(UTC), load_line()
    base = load_base_model(args.model)
    model = base.model.eval()
    ids = _corpus_ids(base.tokenizer)
    half = len(ids) // 2
    linears = _linears(model)
    # one representative of each linear shape (layer 0) plus the LM head, weighted by how many layers have it
    # (the LM head runs on 64 rows in both phases: a prefill only needs the last position's logits)
    names = [n for n in linears if ".layers.0." in n]
    counts = {n: sum(1 for m in linears if m.split(".")[-1] == n.split(".")[-1]) for n in names}
    counts["lm_head"] = 1
    calib = _capture_inputs(model, ids[: min(half, 1024)], [*names, "lm_head"])
    variant_names = ("float32", "bfloat16", "int8", "int8 per-token")

    timings: dict[str, dict[str, list[float]]] = {}
    for rows in (64, 1024):
        for name in [*names, "lm_head"] if rows == 64 else names:
            x = calib[name]
            x = x.repeat((rows + len(x) - 1) // len(x), 1)[:rows].contiguous()
            lin = linears[name]
            variants = {"float32": lambda lin=lin, x=x: F.linear(x, lin.weight), "bfloat16": Bf16Linear(lin)}
            variants["int8"] = Int8Linear(lin)
            variants["int8 per-token"] = Int8Linear(lin, per_token=True)
            key = f"{name.split('.')[-1]}@{rows}"
            timings[key] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for v, fn in variants.items():
                    call = fn if v == "float32" else (lambda fn=fn, x=x: fn(x))
                    timings[key][v].append(_time(call, 10 if rows == 64 else 3))
    medians = {k: {v: statistics.median(t) for v, t in d.items()} for k, d in timings.items()}

    def total(rows: int, variant: str) -> float:
        head = medians["lm_head@64"][variant]
        return head + sum(medians[f"{n.split('.')[-1]}@{rows}"][variant] * counts[n] for n in names)

    speed = {rows: {v: total(rows, v) for v in variant_names} for rows in (64, 1024)}

    evaluation = ids[half:]
    ppl = {"float32": _perplexity(model, evaluation)}
    originals = _swap(model, lambda _n, lin: Bf16Linear(lin))
    ppl["bfloat16"] = _perplexity(model, evaluation)
    _restore(model, originals)
    originals = _swap(model, lambda _n, lin: Int8Linear(lin))
    ppl["int8"] = _perplexity(model, evaluation)
    _restore(model, originals)
    every = [n for n in linears if n != "lm_head"]
    calib_all = _capture_inputs(model, ids[: min(half, 1024)], every)
    for alpha in args.alpha:
        originals = _swap(model, lambda n, lin, a=alpha: Int8Linear(lin, _smoothing(calib_all[n], lin.weight, a)))
        ppl[f"int8 smoothed (alpha {alpha})"] = _perplexity(model, evaluation)
        _restore(model, originals)
    originals = _swap(model, lambda _n, lin: Int8Linear(lin, per_token=True))
    ppl["int8 per-token"] = _perplexity(model, evaluation)
    _restore(model, originals)
    for alpha in args.alpha:
        originals = _swap(
            model, lambda n, lin, a=alpha: Int8Linear(lin, _smoothing(calib_all[n], lin.weight, a), per_token=True)
        )
        ppl[f"int8 per-token smoothed (alpha {alpha})"] = _perplexity(model, evaluation)
        _restore(model, originals)

    def cells(d: dict[str, float]) -> str:
        best = min(d["int8"], d["int8 per-token"])
        return " | ".join(f"{d[v]:.3f}" for v in variant_names) + f" | {d['bfloat16'] / best:.2f}x"

    header = "| " + " ms | ".join(variant_names) + " ms | best int8 vs bf16 |"
    kernel_table = "\n".join(
        ["| linear @ rows " + header, "|---|" + "---:|" * (len(variant_names) + 1)]
        + [f"| {k} | {cells(d)} |" for k, d in medians.items()]
    )
    whole = []
    for rows, d in speed.items():
        r = d["bfloat16"] / min(d["int8"], d["int8 per-token"])
        engine = 1 / ((1 - MATMUL_SHARE) + MATMUL_SHARE / r)
        whole.append(f"| {rows} | {cells(d)} | {engine:.2f}x |")
    whole_table = "\n".join(
        [
            "| rows (all linears) " + header + " projected engine speed-up |",
            "|---:|" + "---:|" * (len(variant_names) + 2),
            *whole,
        ]
    )
    ppl_table = "\n".join(
        ["| base linears | held-out perplexity | vs float32 |", "|---|---:|---:|"]
        + [f"| {k} | {v:.3f} | {v / ppl['float32'] - 1:+.2%} |" for k, v in ppl.items()]
    )
    print(kernel_table, whole_table, ppl_table, sep="\n\n")
    command = " ".join([".venv/bin/python", "benchmarks/serving_kernels.py", *map(shlex.quote, sys.argv[1:])])
    uptime_end = load_line()
    result = {
        "model": args.model,
        "kernels_ms": medians,
        "all_linears_ms": {str(k): v for k, v in speed.items()},
        "perplexity": ppl,
        "eval_tokens": len(evaluation),
        "matmul_share": MATMUL_SHARE,
        "meta": {"command": command, "machine": machine(), "uptime_start": uptime_start, "uptime_end": uptime_end},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_markdown:
        section = f"""
## Serving base in int8 vs bfloat16: kernels and perplexity (issue 16 item 4) — {started.strftime("%Y-%m-%d %H:%M UTC")}

Command: `{command}` (one thread, {args.rounds} interleaved rounds, medians; load start `{uptime_start}`, end
`{uptime_end}`). Real activations of {args.model} on the demo corpus; every linear shape of one layer, times the
number of layers for the totals (the LM head once). int8 = oneDNN `qlinear_pointwise` with per-channel int8 weights
and per-call, per-tensor uint8 activations (quantisation included); projected engine speed-up = 1 / ((1 - p) + p / r)
with p = {MATMUL_SHARE} (the base matmuls' share in `serving_profile.py`) and r = int8 vs bfloat16.

{kernel_table}

{whole_table}

Held-out perplexity ({len(evaluation)} tokens, the second half of the demo corpus; smoothing calibrated on the first
half; LM head in float32 in every row):

{ppl_table}
"""
        append_section(section)
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
