"""LM-LDS of curvatures on the LoRA modules (K-FAC, EK-FAC) against AdamW's diagonal metric, on tiny:0.

The check behind the factory's choice of ``gradient_estimator="graddot"`` (issue 12, session 5). It reuses
``lm_attribution.py``'s LM-LDS setup (the model trained on the first 100 contributions, its 40 queries, the 32
cached half-subset retrains: run ``lm_attribution.py --lds-only`` first) and scores, from the same per-chunk LoRA
loss gradients at the final adapter (unprojected: the tiny LoRA has 3,584 parameters):

- ``none``: cosine of the raw gradients;
- ``adamw``: cosine after scaling both sides by ``(sqrt(v) + eps)^-1/2`` from the run's final AdamW state (what the
  factory's index does, before its projection);
- ``kfac:λ``: ``(G + λ g I)^-1 ∇W (A + λ a I)^-1`` per LoRA linear module, with ``A`` the second moment of the
  module's inputs and ``G`` of its output gradients over every training token (empirical: the true next tokens), the
  damping ``λ`` times each factor's mean diagonal;
- ``ekfac:λ``: the same eigenbases with the eigenvalues corrected by the per-chunk gradients (George et al. 2018,
  as kronfluence fits them), damping ``λ`` times the mean corrected eigenvalue.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/lm_curvature_check.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_attribution as lm  # noqa: E402
from lm_corpus import Corpus, make_corpus  # noqa: E402

from attribution_oracle.attribution import LanguageModelTask  # noqa: E402
from attribution_oracle.attribution.gradients import per_example_grads  # noqa: E402
from attribution_oracle.factory.run_state import load_state  # noqa: E402


def gradients(model, names: list[str], batches: list[dict], fn) -> dict[str, torch.Tensor]:
    """Per-example gradients ``{name: [n, *shape]}`` (float64) of ``fn`` over ``batches``."""
    parts = [per_example_grads(model, fn, names, b) for b in batches]
    return {n: torch.cat([p[n] for p in parts]).double() for n in names}


def factors(model, names: list[str], batches: list[dict]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each LoRA module's K-FAC factors: second moments of its inputs and of its output gradients, per token."""
    acts: dict[str, list] = {n: [] for n in names}
    outs: dict[str, list] = {n: [] for n in names}
    hooks = []
    for name in names:
        module = model.get_submodule(name.rsplit(".", 1)[0])
        hooks.append(module.register_forward_hook(
            lambda _m, inp, _o, n=name: acts[n].append(inp[0].detach().reshape(-1, inp[0].shape[-1]))))  # fmt: skip
        hooks.append(module.register_full_backward_hook(
            lambda _m, _gi, go, n=name: outs[n].append(go[0].detach().reshape(-1, go[0].shape[-1]))))  # fmt: skip
    try:
        for b in batches:
            model.zero_grad()
            LanguageModelTask().loss(model, b).sum().backward()
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for n in names:
        a, g = torch.cat(acts[n]).double(), torch.cat(outs[n]).double()
        out[n] = (a.T @ a / len(a), g.T @ g / len(g))
    return out


def flat(grads: dict[str, torch.Tensor]) -> np.ndarray:
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], 1).numpy()


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def kfac(query: dict, fac: dict, damping: float) -> np.ndarray:
    out = {}
    for n, q in query.items():
        a, g = fac[n]
        ai = torch.linalg.inv(a + damping * a.diagonal().mean() * torch.eye(len(a), dtype=a.dtype))
        gi = torch.linalg.inv(g + damping * g.diagonal().mean() * torch.eye(len(g), dtype=g.dtype))
        out[n] = gi @ q @ ai
    return flat(out)


def ekfac(query: dict, train: dict, fac: dict, damping: float) -> np.ndarray:
    out = {}
    for n, q in query.items():
        a, g = fac[n]
        qa, qg = torch.linalg.eigh(a)[1], torch.linalg.eigh(g)[1]
        eigen = ((qg.T @ train[n] @ qa) ** 2).mean(0)  # eigenvalue correction from the per-chunk gradients
        out[n] = qg @ ((qg.T @ q @ qa) / (eigen + damping * eigen.mean())) @ qa.T
    return flat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dampings", default="0.01,0.1,1,10,100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus, n = make_corpus(seed=0), 100
    sub = Corpus(corpus.texts[:n], corpus.contributors[:n], [f for f in corpus.facts if f.doc < n], {})
    config = lm.config_for("tiny:0", lm.LDS_STEPS["tiny"], **lm.LDS_SETTINGS["tiny"])
    setup = lm.make_setup(lm.trained_model(sub.texts, sub.contributors, "tiny:0", config, "lds-full-tiny0"), sub, 256)
    queries = lm.make_queries(sub, setup.tokenizer, 40, seed=1)
    rng = np.random.default_rng(0)
    masks = np.zeros((32, n), dtype=bool)
    for s in range(32):
        masks[s, rng.permutation(n)[: n // 2]] = True
    truth = lm.lds_truth(sub.texts, masks, "tiny:0", config, queries)
    model = setup.model32
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    batches = [lm._lm_batch(setup.chunks[lo : lo + 8], setup.pad_id) for lo in range(0, len(setup.chunks), 8)]
    train = gradients(model, names, batches, LanguageModelTask().loss)
    query = gradients(model, names, [lm._query_batch(q) for q in queries], LanguageModelTask().measurement)
    moments = load_state(setup.run_dir).optimizer["state"]
    scale = np.concatenate([(moments[i]["exp_avg_sq"].double().sqrt() + 1e-8).rsqrt().reshape(-1).numpy()
                            for i in range(len(names))])  # fmt: skip
    fac = factors(model, names, batches)
    g, q = flat(train), flat(query)

    def lds(scores: np.ndarray) -> str:
        value, error = lm.lds_with_error(masks.astype(float) @ scores.T, truth)
        return f"{value:.3f} ± {error:.3f}"

    rows = [
        ("none (cosine)", lds(-(unit(q) @ unit(g).T))),
        ("adamw (cosine)", lds(-(unit(q * scale) @ unit(g * scale).T))),
    ]
    for damping in [float(x) for x in args.dampings.split(",")]:
        rows.append((f"kfac:{damping:g}", lds(-(kfac(query, fac, damping) @ g.T))))
        rows.append((f"ekfac:{damping:g}", lds(-(ekfac(query, train, fac, damping) @ g.T))))
    print("| curvature | LM-LDS |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
