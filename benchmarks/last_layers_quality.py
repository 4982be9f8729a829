"""Fact tracing on the real SmolLM2 model with the gradient index over every LoRA layer against the last K layers
only (``TrainConfig.attribution_layers``, issue 12's scoring-speed goal), on the same trained adapter.

The model is the one ``lm_attribution.py --base smollm2`` trains and caches (100 steps on the full ``lm_corpus``
Datanet). ``attribution_layers`` does not change training, only the index, so each last-K model is that run resumed
at its last step with the setting added (a copy of its run directory: the run state holds the gradients captured in
the training backward, so no step is retrained) and its index and manifest rebuilt by ``train_model``. Every model
is scored with ``ModelScorer`` on the same teacher-forced fact queries (``lm_attribution.make_queries``), combined
(``scores``, timed, interleaved query by query) and the gradient signal alone (``gradient_scores``).

    nice -n 10 .venv/bin/python benchmarks/last_layers_quality.py --layers 3,6 --queries 72
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import statistics
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lm_attribution as lm  # noqa: E402
from _common import append_section  # noqa: E402
from lm_corpus import make_corpus  # noqa: E402
from scorer_speed import interleaved  # noqa: E402

from attribution_oracle.factory import CatalogSource, train_model  # noqa: E402
from attribution_oracle.factory.scorer import load_model_scorer  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402
from attribution_oracle.store.catalog import Catalog  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def last_layers_model(info: dict, config, layers: int) -> dict:  # noqa: ANN001
    """The cached run resumed at its last step with ``attribution_layers = layers`` (cached next to it)."""
    source = Path(info["root"])
    root = source.with_name(f"{source.name}-last{layers}")
    done = root / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "blobs", root / "blobs", dirs_exist_ok=True)
    shutil.copy2(source / "catalog.sqlite", root / "catalog.sqlite")
    (root / "run").mkdir(exist_ok=True)
    for name in ("state.pt", "state.json"):
        shutil.copy2(source / "run" / name, root / "run" / name)
    bound = json.loads((source / "run" / "config.json").read_text())
    (root / "run" / "config.json").write_text(json.dumps({**bound, "attribution_layers": layers}, sort_keys=True))
    last_k = dataclasses.replace(config, attribution_layers=layers)
    with Catalog(root / "catalog.sqlite", lm.KEY) as catalog:
        result = train_model(CatalogSource(catalog), BlobStore(root / "blobs"), ["1@1"], base_spec="smollm2",
                             config=last_k, run_dir=root / "run",
                             phase=lambda what: print(f"  [last {layers}] {what}", flush=True))  # fmt: skip
    if result.resumed_from != config.steps:
        raise SystemExit(f"the copied run resumed from step {result.resumed_from}, not {config.steps}")
    out = {"root": str(root), "manifest": result.manifest_digest, "index_seconds": result.index_seconds}
    done.write_text(json.dumps(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="3,6", help="attribution_layers values (comma-separated)")
    parser.add_argument("--queries", type=int, default=72)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "last_layers_quality.json"))
    parser.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    corpus = make_corpus(seed=0)
    config = lm.config_for("smollm2", None)
    key = hashlib.sha256(json.dumps({"texts": corpus.texts, "contributors": corpus.contributors, "base": "smollm2",
                                     "config": config.to_dict(), "artefacts": lm.ARTEFACTS_VERSION},
                                    sort_keys=True).encode()).hexdigest()[:16]  # fmt: skip
    if not (lm.CACHE / "lm_attribution" / f"smollm2-{key}" / "result.json").is_file():
        raise SystemExit("no cached SmolLM2 run: run benchmarks/lm_attribution.py --base smollm2 first (about 15 min)")
    info = lm.trained_model(corpus.texts, corpus.contributors, "smollm2", config, "smollm2")
    models = {"all 30 layers": info}
    for k in [int(x) for x in args.layers.split(",") if x.strip()]:
        models[f"last {k} layers"] = last_layers_model(info, config, k)
    scorers = {name: load_model_scorer(BlobStore(Path(m["root"]) / "blobs"), m["manifest"], Path(m["root"]) / "scorers")
               for name, m in models.items()}  # fmt: skip
    owners = {str(i + 1): lm.address(c) for i, c in enumerate(corpus.contributors)}
    queries = lm.make_queries(corpus, next(iter(scorers.values())).tokenizer, args.queries, 0)
    runs = interleaved({name: (lambda q, s=s: s.scores(q.prompt, q.output)) for name, s in scorers.items()}, queries)
    rows = {}
    for name, scorer in scorers.items():
        results, wall, cpu = runs[name]
        it = iter(results)
        combined = lm.evaluate(lambda q, it=it: next(it), queries, corpus, owners)
        gradient = lm.evaluate(lambda q, s=scorer: s.gradient_scores(q.prompt, q.output), queries, corpus, owners)
        rows[name] = {"wall_ms_p50": statistics.median(wall), "cpu_ms_p50": statistics.median(cpu),
                      **{k: combined[k] for k in ("recall_at_1", "mrr", "author_share", "copy_original_share",
                                                  "copy_copier_share")},
                      **{f"grad_{k}": gradient[k] for k in ("recall_at_1", "mrr", "author_share")}}  # fmt: skip
    load_after = os.getloadavg()
    keys = ["wall_ms_p50", "cpu_ms_p50", "recall_at_1", "mrr", "author_share", "copy_original_share",
            "copy_copier_share", "grad_recall_at_1", "grad_mrr", "grad_author_share"]  # fmt: skip
    table = lm.fmt_table(rows, keys)
    print(table)
    print(f"load {load_before[0]:.1f} before, {load_after[0]:.1f} after; {len(queries)} queries")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "meta": {"queries": len(queries), "load_before": load_before,
                                                      "load_after": load_after, "models": models,
                                                      "date": dt.datetime.now(dt.UTC).isoformat()}},
                              indent=2, sort_keys=True) + "\n")  # fmt: skip
    if not args.no_markdown:
        command = "nice -n 10 .venv/bin/python benchmarks/last_layers_quality.py " + shlex.join(sys.argv[1:])
        append_section(
            "\n## Fact tracing on SmolLM2 with the gradient index over the last K layers "
            f"({dt.date.today().isoformat()})\n\n`{command.strip()}` (load {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after; {len(queries)} teacher-forced queries)\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
