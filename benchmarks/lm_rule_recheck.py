"""Fact tracing of other combine rules on a model already trained by ``lm_attribution.py`` (no retraining).

A model's manifest fixes its combine rule, so checking a new rule on SmolLM2 would mean retraining it (about 40
minutes on the shared 2-core machine). The rule only merges the three signals, so this script loads the cached
run's scorer (``benchmarks/.cache/lm_attribution/<tag>-<key>``), records each query's signals once
(``ModelScorer.signals``, as the oracle computes them) and scores every rule named on the same signals with
``lm_attribution.evaluate`` (recall@1, MRR, the author's median share, the copies' shares). The gradient side is
the one the cached model was built with (its manifest says which estimator).

    nice -n 15 .venv/bin/python benchmarks/lm_rule_recheck.py --run smollm2-94da64921f37ab53
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_attribution as lm  # noqa: E402
from lm_corpus import make_corpus  # noqa: E402

from attribution_oracle.attribution.combine import FACTORY_RULE, CombineRule, combine  # noqa: E402
from attribution_oracle.factory.scorer import load_model_scorer  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402

RULES = {
    "manifest": None,
    "session 4 (0.2/0.2/0.6, power 8)": CombineRule(0.2, 0.2, 0.6, 8),
    "FACTORY_RULE": FACTORY_RULE,
    "gradient alone": CombineRule(1.0, 0.0, 0.0, 1),
}
KEYS = ("recall_at_1", "mrr", "author_share", "copy_original_share", "copy_copier_share")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a cached run under benchmarks/.cache/lm_attribution")
    parser.add_argument("--queries", type=int, default=72)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = lm.CACHE / "lm_attribution" / args.run
    if not (root / "result.json").is_file():
        raise SystemExit(f"error: no finished run {args.run!r} under {root.parent}")
    info = json.loads((root / "result.json").read_text())
    corpus = make_corpus(seed=args.seed)
    scorer = load_model_scorer(BlobStore(root / "blobs"), info["manifest"], root / "scorers")
    estimator = scorer.manifest["attribution"]["gradient_index"]["estimator"]
    print(f"run {args.run}: loss {info['loss_first']:.2f} -> {info['loss_last']:.2f}, index {estimator}, "
          f"manifest rule {scorer.rule.to_dict()}", flush=True)  # fmt: skip
    queries = lm.make_queries(corpus, scorer.tokenizer, args.queries, args.seed)
    started = time.perf_counter()
    sides = []
    for i, q in enumerate(queries):
        sides.append(scorer.signals(q.prompt, q.output))
        if i % 12 == 11:
            print(f"  {i + 1}/{len(queries)} queries, {time.perf_counter() - started:.0f} s", flush=True)
    owners = {str(i + 1): lm.address(c) for i, c in enumerate(corpus.contributors)}
    print("\n| rule | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 1) + "|")
    for name, rule in RULES.items():
        rule = rule or scorer.rule
        it = iter([combine(s["gradient"], s["span"], rule, s["lexical"]) for s in sides])
        row = lm.evaluate(lambda q, it=it: next(it), queries, corpus, owners)
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in KEYS) + " |", flush=True)


if __name__ == "__main__":
    main()
