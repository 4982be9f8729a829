"""A separate process for the factory tests: train (printing each step) or score, on a world made by ``world.py``.

python worker.py train ROOT RUN_DIR STEPS      prints "step N" lines, then "done <manifest digest>"
python worker.py score ROOT MANIFEST CACHE     prints the scores as JSON (floats as repr)
python worker.py signals ROOT MANIFEST CACHE   prints every signal of a few queries (other scripts too) as JSON
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(int(os.environ.get("WORKER_THREADS", "1")))  # the scores must not depend on it

from attribution_oracle.factory import CatalogSource, TrainConfig, train_model  # noqa: E402
from attribution_oracle.factory.scorer import load_model_scorer  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402
from attribution_oracle.store.catalog import Catalog  # noqa: E402

KEY = "31337:0xRegistry:factory-tests"
SIGNAL_QUERIES = [
    ("How do I count varroa mites? ", "Varroa mites are counted with an alcohol wash of three hundred bees"),
    ("Как пчёлы зимуют? 蜜蜂怎么过冬？ ", "Winter clusters keep the queen warm"),
    ("Q: ", "Propolis seals small gaps"),
    ("Πώς ξεχειμωνιάζουν οι μέλισσες; كيف تقضي النحل الشتاء؟ ", "Winter clusters keep the queen warm"),
]


def config(steps: int) -> TrainConfig:
    """The settings the resume test uses."""
    return TrainConfig(steps=steps, batch_size=2, seq_len=48, proj_dim=32, checkpoint_every=3, eval_fraction=0.2)


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    store = BlobStore(root / "blobs")
    if mode == "train":
        run_dir, steps = Path(sys.argv[3]), int(sys.argv[4])
        with Catalog(root / "catalog.sqlite", KEY) as catalog:
            result = train_model(
                CatalogSource(catalog), store, ["1"], base_spec="tiny:3", config=config(steps), run_dir=run_dir,
                progress=lambda step, total, loss: print(f"step {step}", flush=True),
            )  # fmt: skip
        print(f"done {result.manifest_digest} {result.adapter_digest} {result.resumed_from}", flush=True)
    elif mode == "signals":
        scorer = load_model_scorer(store, sys.argv[3], Path(sys.argv[4]))
        out = []
        for prompt, output in SIGNAL_QUERIES:
            p, o = list(prompt.encode()), list(output.encode())
            out.append({name: {k: repr(v) for k, v in fn(p, o).items()} for name, fn in (
                ("scores", scorer.scores), ("gradient", scorer.gradient_scores),
                ("span", lambda p, o: scorer.span_scores(o, p)), ("lexical", scorer.lexical_scores))})  # fmt: skip
        print(json.dumps(out, sort_keys=True))
    else:
        scorer = load_model_scorer(store, sys.argv[3], Path(sys.argv[4]))
        scores = scorer.scores([72, 111, 119], list(b"Inspect the hive every nine days"))
        print(json.dumps({k: repr(v) for k, v in scores.items()}, sort_keys=True))


if __name__ == "__main__":
    main()
