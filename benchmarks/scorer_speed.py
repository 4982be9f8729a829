"""Scoring speed of ``ModelScorer`` on SmolLM2 (issue 12 goal: p50 <= 150 ms per inference, gradient and span
signals together, on 2 cores), the fast query path against the float64 reference path, on the same trained model.

The model is a SmolLM2 LoRA trained by the factory (``factory.train_model``, the code ``model train`` runs) on the
first ``--docs`` paragraphs of ``lm_corpus`` (the fact-tracing Datanet of ``lm_attribution.py``), cached under
``benchmarks/.cache/lm_attribution/scorer-speed-<key>``. Queries are that Datanet's fact questions rendered with the
chat template, the output the true answer (teacher-forced), as in ``lm_attribution.py``.

Rows (each is ``load_model_scorer`` + ``ModelScorer.scores``, what the oracle calls, every signal computed; the
timed rows run interleaved, query by query, so a change of machine load hits them alike):

- ``reference``: ``query_path="reference"``: float64 model, per-example ``vmap`` gradients of the whole padded query
  (``Attributor.query_features``), float projection.
- ``before``: the fast path as it was before this change (``BeforeFeaturizer`` below, its ``_gradient`` verbatim):
  the whole model called once, its float64 logits cast to float32 for the log-softmax.
- ``fast``: the default path (``attribution.query_gradients``): float64 model, driven layer by layer, the head on the
  output rows only, float64 log-softmax, one backward through the LoRA parameters, one intra-op thread, exact
  int8-sign projection.
- ``fast, last K layers``: the model trained with ``TrainConfig.attribution_layers = K`` (the same adapter: the
  setting changes only the index), whose index and queries cover the last K layers' LoRA modules: the backward stops
  at layer 30 - K and the chat prefix's states below it are computed once.
- ``... float32 (opt-in)``: the same path on a float32 model (``dtype=torch.float32``), safe only for a fleet of
  nodes on identical kernels.
- ``... batched, N worker(s)``: ``ModelScorer.scores_many`` over all queries at once (an oracle step) with the
  featurizer's ``workers`` at 1 and 2 (alternating rounds), time per inference; its CPU column is the process's CPU
  time (every thread), the others' the scoring thread's.
- ``floor: ...``: no scorer, the float64 model's forward alone at one thread without a graph: of the whole query,
  and of the part after the chat prefix (what any exact float64 gradient must at least compute).

``grad_recall_at_1`` / ``grad_mrr`` are the gradient signal alone (``ModelScorer.gradient_scores``, untimed).

Columns: wall-clock p50 per inference, the scoring thread's CPU time p50 (what one idle core would take; the machine
is shared), recall@1 / MRR of the fact's document and the author's median share of a contributor pool
(``lm_attribution.evaluate``), and agreement of ``fast`` with ``reference`` (same top-1, cosine of the query
gradient features).

    nice -n 10 .venv/bin/python benchmarks/scorer_speed.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
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
from _common import append_section  # noqa: E402
from lm_corpus import Corpus, make_corpus  # noqa: E402

from attribution_oracle.attribution.query_gradients import LoraQueryFeaturizer, single_thread  # noqa: E402
from attribution_oracle.factory import TrainConfig  # noqa: E402
from attribution_oracle.factory.scorer import chat_prefix, load_model_scorer  # noqa: E402
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


class BeforeFeaturizer(LoraQueryFeaturizer):
    """The fast query path as it was before the layer-by-layer drive (its ``_gradient``, verbatim): the whole model
    called once, the float64 logits cast to float32 for the log-softmax. For the "before" row only."""

    def _gradient(self, prompt, output, max_len, checkpoint=0):  # noqa: ANN001, ANN202
        ids = [int(t) for t in prompt] + [int(t) for t in output]
        if max_len and len(ids) > max_len:
            ids = ids[-max_len:]
        n = len(output)
        input_ids = torch.tensor([ids], dtype=torch.long)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                logits = self.model(input_ids=input_ids, logits_to_keep=n + 1).logits[0, :n]
                targets = torch.tensor([int(t) for t in output], dtype=torch.long).unsqueeze(-1)
                if len(ids) == n:
                    logits, targets = logits[: n - 1], targets[1:]
                total = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets).sum()
                grads = torch.autograd.grad(total, self._params, allow_unused=True)
        finally:
            self.model.train(was_training)
        out = [torch.zeros_like(p) if g is None else g for p, g in zip(self._params, grads, strict=True)]
        if self._precondition is not None:
            out = [g * f for g, f in zip(out, self._precondition, strict=True)]
        return out


def before_scorer(scorer):  # noqa: ANN001, ANN201
    """A copy of ``scorer`` whose featurizer is a ``BeforeFeaturizer`` (the same model, index and projection)."""
    before = copy.copy(scorer)
    f = scorer._featurizer
    before._featurizer = BeforeFeaturizer(f.model, f.names, f.projector, f.checkpoints, f.preconditioner,
                                          f.normalize)  # fmt: skip
    return before


def interleaved(fns: dict, queries: list[lm.Query]) -> dict[str, tuple[list, list[float], list[float]]]:
    """Each function on each query, query by query in turn (one warm-up call each first): results, wall ms and
    thread CPU ms per function."""
    out = {name: ([], [], []) for name in fns}
    for fn in fns.values():
        fn(queries[0])
    for q in queries:
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.thread_time()
            out[name][0].append(fn(q))
            out[name][2].append(1000 * (time.thread_time() - c))
            out[name][1].append(1000 * (time.perf_counter() - w))
    return out


def floor_fns(scorer, prefix: tuple[int, ...]) -> dict:  # noqa: ANN001
    """The float64 model's forward alone, one thread, no graph: of the whole query, and of the part after the chat
    prefix with the prefix's keys and values given (every layer)."""
    from attribution_oracle.attribution.query_gradients import _PrefixState, decoder_stack

    stack = decoder_stack(scorer.model)
    state = _PrefixState({}, {}, torch.empty(0))
    with torch.no_grad(), single_thread():
        stack.run(stack.embed(torch.tensor([list(prefix)])), range(stack.depth), 0, state)

    def whole(q: lm.Query) -> None:
        with torch.no_grad(), single_thread():
            stack.norm(stack.run(stack.embed(torch.tensor([q.prompt + q.output])), range(stack.depth), 0, None))

    def suffix(q: lm.Query) -> None:
        ids = (q.prompt + q.output)[len(prefix) :]
        with torch.no_grad(), single_thread():
            stack.norm(stack.run(stack.embed(torch.tensor([ids])), range(stack.depth), len(prefix), state))

    return {"floor: float64 forward, whole query": whole, "floor: float64 forward after the chat prefix": suffix}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=16, help="Datanet paragraphs the model is trained on")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--reference-queries", type=int, default=6, help="queries for the slow reference path")
    parser.add_argument("--layers", default="3,6", help="attribution_layers values to compare (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-rounds", type=int, default=2, help="rounds of scores_many at 1 and 2 workers")
    parser.add_argument("--out", default=str(RESULTS / "scorer_speed.json"))
    parser.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    corpus = sub_corpus(make_corpus(seed=0), args.docs)
    layer_counts = [int(k) for k in args.layers.split(",") if k.strip()]
    config = TrainConfig(steps=args.steps, batch_size=2, seq_len=128, lr=2e-3, rank=8, eval_fraction=0.0,
                         proj_dim=512, checkpoint_every=1000)  # fmt: skip
    infos = {0: lm.trained_model(corpus.texts, corpus.contributors, "smollm2", config, "scorer-speed")}
    for k in layer_counts:
        last_k = dataclasses.replace(config, attribution_layers=k)
        infos[k] = lm.trained_model(corpus.texts, corpus.contributors, "smollm2", last_k, f"scorer-speed-last{k}")
    owners = {str(i + 1): lm.address(c) for i, c in enumerate(corpus.contributors)}

    def load(k: int, **kwargs):  # noqa: ANN202
        info = infos[k]
        return load_model_scorer(BlobStore(Path(info["root"]) / "blobs"), info["manifest"],
                                 Path(info["root"]) / "scorers", **kwargs)  # fmt: skip

    fast = load(0)
    queries = queries_for(corpus, fast.tokenizer, args.queries)
    prefix = chat_prefix(fast.tokenizer)
    scorers = {"before (whole-model call, float32 log-softmax)": before_scorer(fast), "fast (all 30 layers)": fast}
    for k in layer_counts:
        scorers[f"fast, last {k} layers"] = load(k)
    best = f"fast, last {min(layer_counts)} layers" if layer_counts else "fast (all 30 layers)"
    scorers["fast float32 (opt-in, all 30 layers)"] = load(0, dtype=torch.float32)
    if layer_counts:
        scorers[f"fast float32 (opt-in, last {min(layer_counts)} layers)"] = load(
            min(layer_counts), dtype=torch.float32
        )
    fns = {name: (lambda q, s=s: s.scores(q.prompt, q.output)) for name, s in scorers.items()}
    fns.update(floor_fns(fast, prefix))
    runs = interleaved(fns, queries)
    rows: dict[str, dict] = {}
    for name, (results, wall, cpu) in runs.items():
        row = {"wall_ms_p50": statistics.median(wall), "cpu_ms_p50": statistics.median(cpu), "timed": len(queries)}
        if name in scorers:
            it = iter(results)
            row.update(lm.evaluate(lambda q, it=it: next(it), queries, corpus, owners))
            grad = lm.evaluate(lambda q, s=scorers[name]: s.gradient_scores(q.prompt, q.output), queries, corpus,
                               owners)  # fmt: skip
            row.update({"grad_recall_at_1": grad["recall_at_1"], "grad_mrr": grad["mrr"],
                        "grad_author_share": grad["author_share"]})  # fmt: skip
        rows[name] = row
    same = {}
    items = [(q.prompt, q.output) for q in queries]
    for name in (best, "fast (all 30 layers)"):  # scores_many with 1 and 2 workers, alternating rounds
        featurizer = scorers[name]._featurizer
        times: dict[int, tuple[list[float], list[float]]] = {1: ([], []), 2: ([], [])}
        for _ in range(args.batch_rounds):
            for workers in (1, 2):
                featurizer.workers = workers
                w, c = time.perf_counter(), time.process_time()
                batched = scorers[name].scores_many(items)
                times[workers][1].append(1000 * (time.process_time() - c) / len(items))
                times[workers][0].append(1000 * (time.perf_counter() - w) / len(items))
                same[f"{name}, {workers} worker(s)"] = batched == runs[name][0]
        for workers, (wall, cpu) in times.items():
            rows[f"{name}, batched, {workers} worker{'s' if workers > 1 else ''}"] = {
                "wall_ms_p50": statistics.median(wall), "cpu_ms_p50": statistics.median(cpu), "timed": len(items),
                "cpu_is": "process CPU time (all threads) per inference"}  # fmt: skip
    for name in [n for n in scorers if n not in (best, "fast (all 30 layers)")]:
        del scorers[name]  # memory: the reference path loads another float64 model
    del fns
    reference = load(0, query_path="reference")
    ref_queries = queries[: args.reference_queries]
    ref_runs = interleaved({"reference": lambda q: reference.scores(q.prompt, q.output)}, ref_queries)
    ref_results, ref_wall, ref_cpu = ref_runs["reference"]
    it = iter(ref_results)
    rows["reference"] = {**lm.evaluate(lambda q: next(it), ref_queries, corpus, owners),
                         "wall_ms_p50": statistics.median(ref_wall), "cpu_ms_p50": statistics.median(ref_cpu),
                         "timed": len(ref_queries)}  # fmt: skip
    pairs = zip(runs["fast (all 30 layers)"][0], ref_results, strict=False)
    same_top = [max(a, key=a.get) == max(b, key=b.get) for a, b in pairs if a and b]
    cosines = [
        float(torch.nn.functional.cosine_similarity(
            fast._query_features([(q.prompt, q.output)]), reference._query_features([(q.prompt, q.output)])))
        for q in ref_queries
    ]  # fmt: skip
    agreement = {"same_top1": sum(same_top) / max(1, len(same_top)), "min_feature_cosine": min(cosines),
                 "batched_equals_one_at_a_time": same}  # fmt: skip
    load_after = os.getloadavg()
    keys = ["wall_ms_p50", "cpu_ms_p50", "timed", "recall_at_1", "mrr", "author_share", "grad_recall_at_1", "grad_mrr"]
    table = lm.fmt_table(rows, keys)
    base = rows["before (whole-model call, float32 log-softmax)"]
    ratios = {name: {"wall": base["wall_ms_p50"] / row["wall_ms_p50"], "cpu": base["cpu_ms_p50"] / row["cpu_ms_p50"]}
              for name, row in rows.items()}  # fmt: skip
    ratio_text = "; ".join(f"{name}: {r['cpu']:.2f}x CPU, {r['wall']:.2f}x wall" for name, r in ratios.items()
                           if name.startswith("fast"))  # fmt: skip
    print(table)
    print(f"against before: {ratio_text}")
    print(f"agreement {agreement}")
    print(f"load {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    result = {"rows": rows, "agreement": agreement, "ratios_vs_before": ratios,
              "meta": {"docs": args.docs, "steps": args.steps, "queries": len(queries), "threads": args.threads,
                       "layers": layer_counts, "load_before": load_before, "load_after": load_after,
                       "train": {str(k): v for k, v in infos.items()}, "chat_prefix_tokens": len(prefix),
                       "prompt_tokens_mean": statistics.fmean(len(q.prompt) for q in queries),
                       "output_tokens_mean": statistics.fmean(len(q.output) for q in queries),
                       "date": dt.datetime.now(dt.UTC).isoformat()}}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if not args.no_markdown:
        command = "nice -n 10 .venv/bin/python benchmarks/scorer_speed.py " + shlex.join(sys.argv[1:])
        append_section(
            "\n## Scorer speed on SmolLM2: layer-by-layer query path, last-K-layer indices, float64 floor "
            f"({dt.date.today().isoformat()})\n\n"
            f"`{command.strip()}` (load {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
            f"{args.threads} threads)\n\n{table}\n\nagainst before: {ratio_text}\n\n"
            f"agreement: {json.dumps(agreement)}\n"
        )


if __name__ == "__main__":
    main()
