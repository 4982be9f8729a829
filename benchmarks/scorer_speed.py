"""Scoring speed of ``ModelScorer`` on SmolLM2 (issue 12 goal: p50 <= 150 ms per inference, gradient and span
signals together, on 2 cores), the fast query path against the float64 reference path, on the same trained model.

The model is a SmolLM2 LoRA trained by the factory (``factory.train_model``, the code ``model train`` runs) on the
first ``--docs`` paragraphs of ``lm_corpus`` (the fact-tracing Datanet of ``lm_attribution.py``), cached under
``benchmarks/.cache/lm_attribution/scorer-speed-<key>``. Queries are that Datanet's fact questions rendered with the
chat template, the output the true answer (teacher-forced), as in ``lm_attribution.py``.

Rows (each is ``load_model_scorer`` + ``ModelScorer.scores``, what the oracle calls, every signal computed):

- ``reference``: ``query_path="reference"``, the path before this change: float64 model, per-example ``vmap``
  gradients of the whole padded query (``Attributor.query_features``), float projection.
- ``fast``: the default path (``attribution.query_gradients``): float64 model, one backward through the LoRA
  parameters, logits only where output tokens are predicted, one intra-op thread, exact int8-sign projection.
- ``fast float32 (opt-in)``: the same path on a float32 model (``dtype=torch.float32``), safe only for a fleet of
  nodes on identical kernels.
- ``fast batched``: ``ModelScorer.scores_many`` over all queries at once (an oracle step), time per inference.

Columns: wall-clock p50 per inference, the scoring thread's CPU time p50 (what one idle core would take; the machine
is shared), recall@1 / MRR of the fact's document and the author's median share of a contributor pool
(``lm_attribution.evaluate``), and agreement of ``fast`` with ``reference`` (same top-1, cosine of the query
gradient features).

    nice -n 10 .venv/bin/python benchmarks/scorer_speed.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_attribution as lm  # noqa: E402
from lm_corpus import Corpus, make_corpus  # noqa: E402

from attribution_oracle.factory import TrainConfig  # noqa: E402
from attribution_oracle.factory.scorer import load_model_scorer  # noqa: E402
from attribution_oracle.serving.chat import render_chat  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def sub_corpus(corpus: Corpus, docs: int) -> Corpus:
    """The first ``docs`` documents with their facts and the copies among them."""
    return Corpus(
        corpus.texts[:docs],
        corpus.contributors[:docs],
        [f for f in corpus.facts if f.doc < docs],
        {c: v for c, v in corpus.copies.items() if c < docs and v[0] < docs},
    )


def queries_for(corpus: Corpus, tokenizer, limit: int) -> list[lm.Query]:
    """Teacher-forced fact queries (chat-rendered question, answer) of the first ``limit`` facts."""
    out = []
    for fact in corpus.facts[:limit]:
        prompt = render_chat(tokenizer, [{"role": "user", "content": fact.question}])
        p = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        o = list(tokenizer(f"{fact.answer}.", add_special_tokens=False)["input_ids"])
        out.append(lm.Query(p, o, fact.question, fact.answer, fact.doc, "teacher"))
    return out


def timed(fn, queries: list[lm.Query]) -> tuple[list[dict[str, float]], list[float], list[float]]:
    """Results, wall ms and thread CPU ms of ``fn`` on each query."""
    results, wall, cpu = [], [], []
    for q in queries:
        w, c = time.perf_counter(), time.thread_time()
        results.append(fn(q))
        cpu.append(1000 * (time.thread_time() - c))
        wall.append(1000 * (time.perf_counter() - w))
    return results, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=16, help="Datanet paragraphs the model is trained on")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--reference-queries", type=int, default=8, help="queries for the slow reference path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "scorer_speed.json"))
    parser.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    corpus = sub_corpus(make_corpus(seed=0), args.docs)
    config = TrainConfig(steps=args.steps, batch_size=2, seq_len=128, lr=2e-3, rank=8, eval_fraction=0.0,
                         proj_dim=512, checkpoint_every=1000)  # fmt: skip
    info = lm.trained_model(corpus.texts, corpus.contributors, "smollm2", config, "scorer-speed")
    store = BlobStore(Path(info["root"]) / "blobs")
    cache = Path(info["root"]) / "scorers"
    owners = {str(i + 1): lm.address(c) for i, c in enumerate(corpus.contributors)}
    fast = load_model_scorer(store, info["manifest"], cache)
    queries = queries_for(corpus, fast.tokenizer, args.queries)
    rows: dict[str, dict] = {}

    def measured(scorer, timed_queries: list) -> tuple[list[dict], dict]:
        """One warm-up call, then each query timed; the results and their row (quality, wall and CPU p50)."""
        scorer.scores(timed_queries[0].prompt, timed_queries[0].output)  # first-call allocations
        results, wall, cpu = timed(lambda q: scorer.scores(q.prompt, q.output), timed_queries)
        it = iter(results)
        return results, {**lm.evaluate(lambda q: next(it), timed_queries, corpus, owners),
                         "wall_ms_p50": statistics.median(wall), "cpu_ms_p50": statistics.median(cpu),
                         "timed": len(timed_queries)}  # fmt: skip

    fast_results, rows["fast"] = measured(fast, queries)
    w, c = time.perf_counter(), time.thread_time()
    batched = fast.scores_many([(q.prompt, q.output) for q in queries])
    rows["fast batched"] = {"wall_ms_p50": 1000 * (time.perf_counter() - w) / len(queries),
                            "cpu_ms_p50": 1000 * (time.thread_time() - c) / len(queries), "timed": len(queries),
                            "same_as_one_at_a_time": batched == fast_results}  # fmt: skip
    fast32 = load_model_scorer(store, info["manifest"], cache, dtype=torch.float32)  # opt-in: identical kernels only
    _, rows["fast float32 (opt-in)"] = measured(fast32, queries)
    reference = load_model_scorer(store, info["manifest"], cache, query_path="reference")
    ref_queries = queries[: args.reference_queries]
    ref_results, rows["reference"] = measured(reference, ref_queries)
    it = iter(fast_results)
    rows["fast (reference's queries)"] = lm.evaluate(lambda q: next(it), ref_queries, corpus, owners)
    pairs = zip(fast_results, ref_results, strict=False)
    same_top = [max(a, key=a.get) == max(b, key=b.get) for a, b in pairs if a and b]
    cosines = [
        float(torch.nn.functional.cosine_similarity(
            fast._query_features([(q.prompt, q.output)]), reference._query_features([(q.prompt, q.output)])))
        for q in ref_queries
    ]  # fmt: skip
    agreement = {"same_top1": sum(same_top) / max(1, len(same_top)), "min_feature_cosine": min(cosines)}
    load_after = os.getloadavg()
    keys = ["wall_ms_p50", "cpu_ms_p50", "timed", "recall_at_1", "mrr", "author_share"]
    table = lm.fmt_table({k: rows[k] for k in ("reference", "fast (reference's queries)", "fast", "fast batched",
                                             "fast float32 (opt-in)")},
                         keys)  # fmt: skip
    ratio = rows["reference"]["wall_ms_p50"] / rows["fast"]["wall_ms_p50"]
    cpu_ratio = rows["reference"]["cpu_ms_p50"] / rows["fast"]["cpu_ms_p50"]
    print(table)
    print(f"fast vs reference: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU; agreement {agreement}")
    print(f"load {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    result = {"rows": rows, "agreement": agreement, "ratio_wall": ratio, "ratio_cpu": cpu_ratio,
              "meta": {"docs": args.docs, "steps": args.steps, "queries": len(queries), "threads": args.threads,
                       "load_before": load_before, "load_after": load_after, "train": info,
                       "prompt_tokens_mean": statistics.fmean(len(q.prompt) for q in queries),
                       "output_tokens_mean": statistics.fmean(len(q.output) for q in queries),
                       "date": dt.datetime.now(dt.UTC).isoformat()}}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if not args.no_markdown:
        command = "nice -n 10 .venv/bin/python benchmarks/scorer_speed.py " + shlex.join(sys.argv[1:])
        with open(ROOT / "BENCHMARKS.md", "a") as handle:
            handle.write(
                "\n## Scorer speed on SmolLM2: fast query path vs float64 reference "
                f"({dt.date.today().isoformat()})\n\n"
                f"`{command.strip()}` (load {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
                f"{args.threads} threads)\n\n{table}\n\nfast vs reference: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU; "
                f"same top-1 {agreement['same_top1']:.3f}, min query-feature cosine "
                f"{agreement['min_feature_cosine']:.6f}\n"
            )


if __name__ == "__main__":
    main()
