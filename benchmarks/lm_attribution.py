"""Proof of Attribution on our own LoRA language models: fact tracing (and LM-LDS) against BM25, LESS, TRAK, EK-FAC.

Part a, fact tracing. ``lm_corpus.make_corpus`` writes a Datanet of paragraphs with several invented facts each
(entities shared across paragraphs as distractors; verbatim and near copies approved later by other contributors).
The Datanet goes through the product's path: blobs in a ``BlobStore``, events in a ``Catalog``, a published
version, ``factory.train_model`` (the code ``model train`` runs: verification, LoRA training, the gradient, span
and lexical indices, copy groups, the manifest), then ``factory.scorer.load_model_scorer`` (what the oracle calls).
Queries are paraphrased questions rendered with the chat template (what ``serve`` does); the output is the true
answer, teacher-forced, and also the model's own greedy answer when it contains the true one.

Methods, on the same trained adapter: ``ours`` (``ModelScorer.scores``, the manifest's combine rule) and each of
its signals alone (``ours:gradient``, ``ours:span``, ``ours:lexical``); ``bm25`` (``bm25s``, question + answer
against the contribution texts); ``less`` (LESS/TrackStar style: per-chunk LoRA gradients of the final adapter,
divided by the root of the AdamW second moments the run ended with, randomly projected, unit-normalised, cosine
with the query's gradient); ``trak`` (``traker`` on the LoRA parameters, one checkpoint); ``ekfac`` (``kronfluence``
EK-FAC on the LoRA modules).

Metrics per method: recall@1 and MRR of the fact's document (its copies count as hits too, so peers are not
punished for ranking a verbatim copy first), ``author_share``: the median share of a 1 OPEN contributor pool that
``contributor_shares`` pays to the fact's author, ``copy_original_share`` / ``copy_copier_share``: mean share of
the original's author and of the copier over the facts of verbatim-copied documents, ``score_ms_p50``: median
wall-clock per query of the method's query-time work.

Part b, LM-LDS (``--lds`` or ``--lds-only``): ``--lds-subsets`` random half-subsets of the first ``--lds-docs``
originals. The model on all of them is trained by ``train_model`` (every method scores with it); each subset is
retrained with the same seed, steps and settings by the factory's own functions (``tokenize_documents``,
``split_eval``, ``attach_lora``, ``train_loop``: what ``train_model`` runs) but without the attribution artefacts,
which the ground truth does not need (the run checks that this retrain reproduces the full model's likelihoods).
Ground truth is the log-likelihood of held-out query answers (teacher-forced) under each subset's adapter, cached
per subset under ``benchmarks/.cache/lm_lds`` by a key of its configuration (base, settings, texts, queries), so
a stopped run resumes. Each method's scores on the full model predict it by subset sums; LDS = mean Spearman
over queries. ``meta.lds_info.rule_sweep`` in the results gives the LDS of other combine rules on the same signals,
``meta.lds_info.author_only_lds`` the LDS of the map that scores only the fact's own document (what any rule that
pays the author most of the pool is held to). The ground truth's cache key leaves out the settings that shape only
the attribution index (``INDEX_ONLY``), so the index ablations (``--gradient-estimator``, ``--proj-dim``,
``--attribution-checkpoints``, ``--index-capture``, ``--plain-gradients``) reuse the 32 cached retrains.
The methods score before the retrains (saved as they finish), and ``--lds-stop-at HH:MM`` starts no retrain after
that UTC time, so a run that has to stop reports LDS over the subsets it finished. SmolLM2's LM-LDS uses a reduced
config (``LDS_SETTINGS``): 4 steps of 2 packed rows of 256 tokens at lr 5e-3, so 33 trainings fit in about an hour
on one shared core instead of 7.5 hours (see BENCHMARKS.md).

Peers' knobs (``--sweep``): LESS with and without AdamW preconditioning and unit normalisation, TRAK at
projection dimensions 64 / 128 / 256 / 512 / 2048 (fact tracing has 224 training chunks), EK-FAC at damping 1e-8
(kronfluence's default) / 1e-4 / its heuristic (0.1 x mean eigenvalue). The variants of a peer share its
per-example gradients (EK-FAC its fitted factors); the table shows each peer at its best variant (fact tracing: by
MRR then author share; LM-LDS: by LDS), the results file keeps every variant (``meta.facts_detail`` /
``meta.lds_detail``). A run of one part keeps the other part's results already in the results file (``meta.parts``
says which run each part comes from). ``peak_rss_mb``: the process's peak resident memory while the method ran
(``peak_memory.PeakRss``; it includes what earlier methods keep, e.g. the model and a peer's cached gradients).
Every finished method is saved at once to ``<results>.facts.partial.json`` / ``.lds.partial.json``; ``--resume``
reuses them in a rerun of the same configuration (a killed run loses only the method it was in).

    nice -n 10 .venv/bin/python benchmarks/lm_attribution.py                   # tiny:0 (fast mode)
    nice -n 10 .venv/bin/python benchmarks/lm_attribution.py --lds-only --sweep --threads 1   # LM-LDS, tiny:0
    nice -n 10 .venv/bin/python benchmarks/lm_attribution.py --base smollm2 --sweep --threads 1  # the real model
    nice -n 10 .venv/bin/python benchmarks/lm_attribution.py --base smollm2 --lds-only --sweep --threads 1 --resume

On a loaded machine use ``--threads 1``: two OpenMP threads on two cores shared with other processes spin and
made a SmolLM2 forward 5-40x slower here.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_section  # noqa: E402
from lm_corpus import Corpus, make_corpus  # noqa: E402
from peak_memory import PeakRss, release_memory  # noqa: E402

from attribution_oracle.attribution import LanguageModelTask, contributor_shares  # noqa: E402
from attribution_oracle.factory import CatalogSource, TrainConfig, train_model  # noqa: E402
from attribution_oracle.factory.scorer import ModelScorer, load_model_scorer  # noqa: E402
from attribution_oracle.files import atomic_write  # noqa: E402
from attribution_oracle.serving.chat import render_chat  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402
from attribution_oracle.store.catalog import Catalog  # noqa: E402
from attribution_oracle.store.merkle import MerkleTree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"
KEY = "31337:0xRegistry:lm-attribution"
POOL = 10**18
ARTEFACTS_VERSION = 8  # bump when what the factory builds changes (8: graddot index, session-5 combine rule)


def address(i: int) -> str:
    """The address of contributor ``i``."""
    return "0x" + f"{i + 1:040x}"


# ------------------------------------------------------------------ the Datanet, through the product's path


def _event(event: str, block: int, **args: Any) -> dict[str, Any]:
    tx = "0x" + hashlib.sha256(f"tx {event} {block}".encode()).hexdigest()
    return {"event": event, "args": args, "blockNumber": block, "logIndex": 0, "transactionHash": tx}


def publish(root: Path, texts: list[str], contributors: list[int]) -> tuple[BlobStore, Catalog]:
    """Blobs + a catalog holding one Datanet whose version 1 holds ``texts`` in order (the chain's events)."""
    store = BlobStore(root / "blobs")
    catalog = Catalog(root / "catalog.sqlite", KEY)
    hashes = [store.put_bytes(t.encode()) for t in texts]
    owner = address(10_000)
    events = [_event("DatanetCreated", 1, datanetId=1, owner=owner, name="facts", metadataURI="", minStake=0,
                     feePaid=0)]  # fmt: skip
    block = 2
    for i, digest in enumerate(hashes):
        events.append(_event("ContributionSubmitted", block, contributionId=i + 1, datanetId=1,
                             contributor=address(contributors[i]), contentHash=bytes.fromhex(digest),
                             uri=f"sha256://{digest}", size=len(texts[i]), stake=0))  # fmt: skip
        events.append(_event("ContributionApproved", block + 1, contributionId=i + 1, datanetId=1, curator=owner,
                             approvalIndex=i, stakeReturned=0))  # fmt: skip
        block += 2
    root_hash = MerkleTree([bytes.fromhex(h) for h in hashes]).root
    events.append(_event("VersionPublished", block, datanetId=1, version=1, merkleRoot=root_hash, count=len(hashes),
                         manifestURI="sha256://" + "0" * 64))  # fmt: skip
    catalog.apply(events, block, "0x" + hashlib.sha256(f"block {block}".encode()).hexdigest())
    return store, catalog


def config_for(base: str, steps: int | None, **extra: Any) -> TrainConfig:
    """Training settings: tiny trains on bytes (longer rows), SmolLM2 on BPE tokens; ``extra`` overrides."""
    if base.startswith("tiny"):
        settings = {"batch_size": 8, "seq_len": 384, "lr": 3e-3, "proj_dim": 1024}
    else:
        settings = {"batch_size": 8, "seq_len": 256, "lr": 2e-3, "proj_dim": 512}
    settings |= {"rank": 8, "eval_fraction": 0.0, "checkpoint_every": 1000} | extra
    return TrainConfig(steps=steps or 100, **settings)


def trained_model(texts: list[str], contributors: list[int], base: str, config: TrainConfig, tag: str) -> dict:
    """Train (or reuse the cached run of) the Datanet; returns paths and the manifest digest."""
    key = hashlib.sha256(json.dumps({"texts": texts, "contributors": contributors, "base": base,
                                     "config": config.to_dict(), "artefacts": ARTEFACTS_VERSION},
                                    sort_keys=True).encode()).hexdigest()[:16]  # fmt: skip
    root = CACHE / "lm_attribution" / f"{tag}-{key}"
    done = root / "result.json"
    if done.is_file():  # the cache is shared by worktrees: its root is where it is now, not where it was made
        return json.loads(done.read_text()) | {"root": str(root)}
    root.mkdir(parents=True, exist_ok=True)
    store, catalog = publish(root, texts, contributors)
    started = time.perf_counter()
    with catalog:
        say = lambda what: print(f"  [{tag}] {what}", flush=True)  # noqa: E731
        result = train_model(CatalogSource(catalog), store, ["1@1"], base_spec=base, config=config,
                             run_dir=root / "run", phase=say)  # fmt: skip
    info = {"root": str(root), "manifest": result.manifest_digest, "train_seconds": result.train_seconds,
            "index_seconds": result.index_seconds, "total_seconds": time.perf_counter() - started,
            "loss_first": result.manifest["metrics"]["train_loss_first"],
            "loss_last": result.manifest["metrics"]["train_loss_last"]}  # fmt: skip
    done.write_text(json.dumps(info))
    return info


# ------------------------------------------------------------------ queries


@dataclass
class Query:
    """One scored inference: the prompt and output token ids, the fact's document and its group."""

    prompt: list[int]
    output: list[int]
    question: str
    answer: str
    doc: int
    kind: str  # "teacher" or "greedy"


def make_queries(corpus: Corpus, tokenizer, limit: int, seed: int) -> list[Query]:
    """Teacher-forced queries: every fact of a copied document, then a seeded sample of the others."""
    copied = {src for src, _ in corpus.copies.values()}
    first = [f for f in corpus.facts if f.doc in copied]
    rest = [f for f in corpus.facts if f.doc not in copied]
    rng = np.random.default_rng(seed)
    picked = first + [rest[i] for i in sorted(rng.permutation(len(rest))[: max(0, limit - len(first))])]
    out = []
    for fact in picked:
        prompt = render_chat(tokenizer, [{"role": "user", "content": fact.question}])
        p = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        o = list(tokenizer(f"{fact.answer}.", add_special_tokens=False)["input_ids"])
        out.append(Query(p, o, fact.question, fact.answer, fact.doc, "teacher"))
    return out


@torch.no_grad()
def greedy_queries(model, tokenizer, queries: list[Query], max_new: int = 16) -> list[Query]:
    """The model's own greedy answers that contain the true answer."""
    out = []
    for q in queries:
        ids = torch.tensor([q.prompt])
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                             do_sample=False, pad_token_id=tokenizer.eos_token_id)  # fmt: skip
        gen = gen[0, len(q.prompt) :].tolist()
        if tokenizer.eos_token_id in gen:
            gen = gen[: gen.index(tokenizer.eos_token_id)]
        text = tokenizer.decode(gen, skip_special_tokens=True)
        if gen and q.answer.casefold() in text.casefold():
            out.append(Query(q.prompt, gen, q.question, q.answer, q.doc, "greedy"))
    return out


# ------------------------------------------------------------------ methods


Method = Callable[[Query], dict[str, float]]


@dataclass
class Setup:
    """What every method shares."""

    corpus: Corpus
    scorer: ModelScorer
    tokenizer: Any
    model32: Any  # float32 copy of the trained LoRA model, for the peers
    chunks: list  # training chunks (factory.chunking.Chunk)
    pad_id: int
    run_dir: Path
    proj_dim: int
    timings: dict[str, float] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)  # work that a peer's variants share (e.g. its gradients)


def ours(setup: Setup, signal: str | None) -> Method:
    """``ModelScorer`` as the oracle calls it, or one of its signals alone.

    ``ours`` runs ``scorer.signals`` + the manifest's combine rule, which is exactly ``scorer.scores`` (checked on
    the first query), and keeps each query's sides so the signal-alone rows reuse them (on SmolLM2 the gradient
    side is the expensive one); a signal's time is then measured by calling it alone on ``SIGNAL_TIMING`` queries."""
    from attribution_oracle.attribution.combine import combine

    scorer = setup.scorer
    memo = setup.timings.setdefault("_sides", {})
    if signal is None:

        def run(q: Query) -> dict[str, float]:
            sides = scorer.signals(q.prompt, q.output)
            memo[id(q)] = sides
            out = combine(sides["gradient"], sides["span"], scorer.rule, sides["lexical"])
            if not setup.timings.get("_checked"):
                setup.timings["_checked"] = 1.0
                assert out == scorer.scores(q.prompt, q.output), "signals + combine must equal scorer.scores"
            return out

        return run
    alone = {
        "gradient": lambda q: scorer.gradient_scores(q.prompt, q.output),
        "span": lambda q: scorer.span_scores(q.output, q.prompt),
        "lexical": lambda q: scorer.lexical_scores(q.prompt, q.output),
    }[signal]
    timed = [0]

    def run_signal(q: Query) -> dict[str, float]:
        if id(q) in memo and timed[0] >= SIGNAL_TIMING:
            return Memo(memo[id(q)][signal])
        timed[0] += 1
        return alone(q)

    return run_signal


SIGNAL_TIMING = 12


class Memo(dict):
    """A result reused from ``ours`` (its time is not a measurement of the signal)."""


def bm25(setup: Setup) -> Method:
    """``bm25s`` (Lucene BM25, English stop words) over the contribution texts; query = question + answer."""
    import bm25s

    started = time.perf_counter()
    ids = [str(i + 1) for i in range(len(setup.corpus.texts))]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(setup.corpus.texts, stopwords="en", show_progress=False), show_progress=False)
    setup.timings["bm25_index_s"] = time.perf_counter() - started

    def run(q: Query) -> dict[str, float]:
        text = f"{q.question} {setup.tokenizer.decode(q.output, skip_special_tokens=True)}"
        tokens = bm25s.tokenize([text], stopwords="en", show_progress=False)
        known = [t for t in _query_tokens(tokens) if t in retriever.vocab_dict]
        scores = retriever.get_scores(known) if known else np.zeros(len(ids))
        return {ids[i]: float(s) for i, s in enumerate(scores) if s > 0}

    return run


def _query_tokens(tokens) -> list[str]:
    inverse = {v: k for k, v in tokens.vocab.items()}
    return [inverse[t] for t in tokens.ids[0]]


def scratch_dir(prefix: str) -> str:
    """A temporary directory for a peer's files, removed when the benchmark exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _lm_batch(chunks, pad_id: int) -> dict[str, torch.Tensor]:
    from attribution_oracle.factory.chunking import example_batch

    return example_batch(chunks, pad_id)


def _query_batch(q: Query) -> dict[str, torch.Tensor]:
    ids = torch.tensor([q.prompt + q.output])
    labels = ids.clone()
    labels[0, : len(q.prompt)] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def less(setup: Setup, precondition: bool = True, normalise: bool = True) -> Method:
    """LESS / TrackStar: Adam-preconditioned, projected, unit-normalised LoRA gradients; cosine similarity.

    The knobs swept (``--sweep``): AdamW preconditioning of the training gradients and unit normalisation. The
    per-example gradients do not depend on them, so they are computed once per setup and shared by the variants
    (every variant reports the query-time cost of the first, which computed its query gradients)."""
    from attribution_oracle.attribution import Projector
    from attribution_oracle.attribution.gradients import per_example_grads
    from attribution_oracle.factory.run_state import load_state

    model = setup.model32
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    memo = setup.memo.setdefault("less", {})
    if "train" not in memo:
        state = load_state(setup.run_dir)
        moments = state.optimizer["state"]
        # AdamW's state is keyed by the position of the parameter in its list (the trainable ones in order)
        precond = {n: 1.0 / (moments[i]["exp_avg_sq"].sqrt() + 1e-8) for i, n in enumerate(names)}
        memo["precond"] = {n: v / v.mean() for n, v in precond.items()}
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
        memo["projector"] = Projector(shapes, dim=setup.proj_dim, seed=0)
        started = time.perf_counter()
        task = LanguageModelTask()
        memo["train"] = []
        for lo in range(0, len(setup.chunks), 8):
            batch = _lm_batch(setup.chunks[lo : lo + 8], setup.pad_id)
            memo["train"].append(per_example_grads(model, task.loss, names, batch))
            release_memory()  # vmap's freed temporaries stay in the C heap otherwise (GiBs per batch on SmolLM2)
        setup.timings["less_featurize_s"] = time.perf_counter() - started
        memo["queries"] = {}
    projector, scale = memo["projector"], memo["precond"]

    def features(grads: dict, scaled: bool) -> torch.Tensor:
        if scaled:
            grads = {n: g * scale[n] for n, g in grads.items()}
        x = projector.project(grads).double()
        return x / x.norm(dim=1, keepdim=True).clamp(min=1e-30) if normalise else x

    train = torch.cat([features(g, precondition) for g in memo["train"]])
    owners = [c.contribution for c in setup.chunks]

    def run(q: Query) -> dict[str, float]:
        key = (tuple(q.prompt), tuple(q.output))
        cached = key in memo["queries"]
        if not cached:
            # the query's *loss* gradient, as LESS takes the validation loss's: a training chunk whose loss gradient
            # points the same way is one whose gradient step lowers the query's loss (a positive, helpful score)
            memo["queries"][key] = per_example_grads(model, LanguageModelTask().loss, names, _query_batch(q))
            if len(memo["queries"]) % 16 == 0:  # now and then: the trim is not free, and it is in the timed path
                release_memory()
        sims = (train @ features(memo["queries"][key], False)[0]).tolist()
        out: dict[str, float] = {}
        for owner, value in zip(owners, sims, strict=True):
            out[owner] = max(out.get(owner, -float("inf")), value)
        return Memo(out) if cached else out

    return run


class _LMOutput:
    """traker model output for a causal LM: the sum of per-token margins of the labelled tokens."""

    @staticmethod
    def _logits(model, weights, buffers, input_ids, attention_mask):
        from attribution_oracle.attribution.task import causal_padding_mask

        mask = causal_padding_mask(attention_mask, torch.float32)
        return torch.func.functional_call(model, (weights, buffers), args=(),
                                          kwargs={"input_ids": input_ids, "attention_mask": mask}).logits  # fmt: skip

    def get_output(self, model, weights, buffers, input_ids, attention_mask, labels):
        logits = self._logits(model, weights, buffers, input_ids.unsqueeze(0), attention_mask.unsqueeze(0))[0, :-1]
        target = labels[1:]
        keep = (target != -100).to(logits.dtype)
        safe = target.clamp(min=0)
        correct = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        others = logits.scatter(-1, safe.unsqueeze(-1), float("-inf")).logsumexp(-1)
        return ((correct - others) * keep).sum()

    def get_out_to_loss_grad(self, model, weights, buffers, batch):
        input_ids, attention_mask, labels = batch
        logits = self._logits(model, weights, buffers, input_ids, attention_mask)[:, :-1]
        target = labels[:, 1:]
        keep = (target != -100).to(logits.dtype)
        p = torch.softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (((1 - p) * keep).sum(-1) / keep.sum(-1).clamp(min=1)).detach().unsqueeze(-1)


TRAK_GRAD_BATCH = 8  # examples per slice of per-example gradients (the heap is trimmed after each)
TRAK_FEATURIZE_BATCH = 32  # examples per traker.featurize / score call (each call regenerates the projection)
TRAK_QUERY_BATCH = 8  # queries scored together, right-padded (padding changes no real token's margin)


def padded_batch(rows: list[dict[str, torch.Tensor]], pad_id: int) -> list[torch.Tensor]:
    """Right-pad single-example batches (``input_ids`` / ``attention_mask`` / ``labels``, each ``[1, T]``) to one
    ``[B, max T]`` batch: pad tokens get mask 0 and label -100, so under the causal mask no real token's logits or
    label change."""
    width = max(r["input_ids"].shape[1] for r in rows)
    out = []
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("labels", -100)):
        out.append(torch.cat([torch.nn.functional.pad(r[key], (0, width - r[key].shape[1]), value=fill)
                              for r in rows]))  # fmt: skip
    return out


def looped_output_grads(output: Any, model: torch.nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-example gradients of traker's model output (``output.get_output``) with respect to the trainable (LoRA)
    parameters, one example at a time with an ordinary backward: the values of traker's ``torch.func.vmap``
    per-example gradients, with the memory of one example (on SmolLM2 vmap kept GiBs per call)."""
    weights = {n: p for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    out: dict[str, list[torch.Tensor]] = {n: [] for n in weights}
    for i in range(len(batch[0])):
        value = output.get_output(model, weights, buffers, *(t[i] for t in batch))
        for name, grad in zip(weights, torch.autograd.grad(value, list(weights.values())), strict=True):
            out[name].append(grad.detach())
    return {n: torch.stack(v) for n, v in out.items()}


def chunked_per_sample(compute: Callable[[list[torch.Tensor]], dict], batch: list[torch.Tensor],
                       size: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """``compute`` (per-example gradients ``{name: [B, ...]}``) over ``batch`` in slices of ``size`` examples,
    concatenated, handing the C heap back to the OS after each slice: the same gradients as one call, with the
    peak of ``size`` examples."""
    parts: list[dict] = []
    for lo in range(0, len(batch[0]), size):
        parts.append(compute([t[lo : lo + size] for t in batch]))
        release_memory()
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def trak(setup: Setup, proj_dim: int | None = None) -> Method:
    """TRAK from ``traker`` on the LoRA parameters (gradients taken through the LoRA weights only).

    The knob swept (``--sweep``) is the projection dimension. traker computes the same per-example gradients
    for every dimension, so they are kept per setup (keyed by the batch) and only traker's projection,
    ``finalize_features`` and scoring run again per variant. Memory (SmolLM2 went to 24 GiB and the OOM killer
    before): per-example gradients of traker's model output one example at a time (``looped_output_grads``, the
    values of traker's vmap), the heap trimmed after every ``TRAK_GRAD_BATCH``, traker's out-to-loss forward under
    ``no_grad``, traker's
    ``BasicProjector`` in blocks of at most 512 columns (``params x 512`` float32, 0.9 GB on SmolLM2), and
    featurizing / scoring in batches of ``TRAK_FEATURIZE_BATCH`` / ``TRAK_QUERY_BATCH`` (one projection each)."""
    from trak import TRAKer
    from trak.modelout_functions import AbstractModelOutput
    from trak.projectors import BasicProjector, ProjectionType

    class LMOutput(_LMOutput, AbstractModelOutput):
        def __init__(self) -> None:
            super().__init__()

    model = setup.model32
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grad_dim = sum(p.numel() for p in lora.values())
    started = time.perf_counter()
    save_dir = scratch_dir("traker-")
    proj_dim = proj_dim or setup.proj_dim
    projector = BasicProjector(grad_dim=grad_dim, proj_dim=proj_dim, seed=0, proj_type=ProjectionType.rademacher,
                               device="cpu", block_size=min(proj_dim, 512), dtype=torch.float32)  # fmt: skip
    traker = TRAKer(model=model, task=LMOutput(), train_set_size=len(setup.chunks), save_dir=save_dir, device="cpu",
                    projector=projector, use_half_precision=False, logging_level=logging.ERROR,
                    grad_wrt=list(lora))  # fmt: skip
    computer = traker.gradient_computer

    def lora_only(m) -> None:  # differentiate through the LoRA weights only (the base stays a constant)
        computer.func_weights = {n: p for n, p in m.named_parameters() if p.requires_grad}
        computer.func_buffers = dict(m.named_buffers())

    computer.load_model_params = lora_only
    grads_memo = setup.memo.setdefault("trak", {})
    loss_grad = computer.compute_loss_grad

    def batch_key(what: str, batch) -> str:
        return what + hashlib.sha256(b"".join(t.numpy().tobytes() for t in batch)).hexdigest()

    task = traker.task

    def cached_per_sample(batch):
        key = batch_key("g", batch)
        if key not in grads_memo:
            grads_memo[key] = chunked_per_sample(lambda part: looped_output_grads(task, model, part), batch,
                                                 TRAK_GRAD_BATCH)  # fmt: skip
        return grads_memo[key]

    def cached_loss_grad(batch):
        key = batch_key("l", batch)
        if key not in grads_memo:
            # traker's out-to-loss term is a plain forward (its result is detached): without no_grad the forward
            # keeps the whole batch's activations for a backward that never comes (GiBs for 32 SmolLM2 chunks)
            with torch.no_grad():
                grads_memo[key] = loss_grad(batch)
            release_memory()
        return grads_memo[key]

    computer.compute_per_sample_grad = cached_per_sample
    computer.compute_loss_grad = cached_loss_grad
    first = "trak_featurize_s" not in setup.timings
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    traker.load_checkpoint(state, model_id=0)
    for lo in range(0, len(setup.chunks), TRAK_FEATURIZE_BATCH):
        b = _lm_batch(setup.chunks[lo : lo + TRAK_FEATURIZE_BATCH], setup.pad_id)
        traker.featurize(batch=[b["input_ids"], b["attention_mask"], b["labels"]], num_samples=len(b["input_ids"]))
    traker.finalize_features()
    if not getattr(projector, "proj_matrix_available", True):
        projector.model_id = -1
    if first:
        setup.timings["trak_featurize_s"] = time.perf_counter() - started
    owners = [c.contribution for c in setup.chunks]
    counter = [0]

    def batch(queries: list[Query]) -> list[dict[str, float]]:
        counter[0] += 1
        name = f"q{counter[0]}"
        traker.start_scoring_checkpoint(exp_name=name, checkpoint=state, model_id=0, num_targets=len(queries))
        for lo in range(0, len(queries), TRAK_QUERY_BATCH):
            group = [_query_batch(q) for q in queries[lo : lo + TRAK_QUERY_BATCH]]
            traker.score(batch=padded_batch(group, setup.pad_id), num_samples=len(group))
        scores = np.asarray(traker.finalize_scores(exp_name=name), dtype=np.float64)
        return [_by_owner(owners, scores[:, j].tolist()) for j in range(len(queries))]

    return Batched(batch, shared="trak")


EKFAC_FIT_EXAMPLES: int | None = None  # --ekfac-fit-examples: kronfluence's covariance/lambda_max_examples (None: all)


def ekfac(setup: Setup, damping: float | None = 1e-8) -> Method:
    """Kronfluence EK-FAC influence on the LoRA modules (lora_A / lora_B linear layers).

    The knob swept (``--sweep``) is the damping of the inverse (kronfluence's default ``1e-8``, ``None`` = its
    heuristic of 0.1 x the mean eigenvalue, and values between); the factors are fitted once per setup."""
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    from attribution_oracle.attribution.task import causal_padding_mask

    model = setup.model32
    modules = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".lora_" in n]

    def token_logprobs(batch, mdl) -> tuple[torch.Tensor, torch.Tensor]:
        mask = causal_padding_mask(batch["attention_mask"], torch.float32)
        logits = mdl(input_ids=batch["input_ids"], attention_mask=mask).logits[:, :-1].float()
        labels = batch["labels"][:, 1:]
        keep = (labels != -100).float()
        picked = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return picked * keep, logits

    class LMTask(Task):
        def compute_train_loss(self, batch, model, sample: bool = False) -> torch.Tensor:
            if not sample:
                picked, _ = token_logprobs(batch, model)
                return -picked.sum()
            _, logits = token_logprobs(batch, model)
            with torch.no_grad():
                sampled = torch.distributions.Categorical(logits=logits).sample()
            keep = (batch["labels"][:, 1:] != -100).float()
            lp = torch.log_softmax(logits, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
            return -(lp * keep).sum()

        def compute_measurement(self, batch, model) -> torch.Tensor:
            # the query's loss (negative log-likelihood): kronfluence scores grad f(query) . H^-1 grad L(train),
            # so with f a loss a positive score is a helpful training example (the convention of its examples)
            picked, _ = token_logprobs(batch, model)
            return -picked.sum()

        def get_influence_tracked_modules(self):
            return modules

        def get_attention_mask(self, batch):
            return None

    class Rows(torch.utils.data.Dataset):
        def __init__(self, items: list[dict]) -> None:
            self.items = items

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int) -> dict:
            return self.items[i]

    memo = setup.memo.setdefault("ekfac", {})
    if "analyzer" not in memo:
        width = max(len(c.tokens) for c in setup.chunks)
        train_items = []
        for c in setup.chunks:
            b = _lm_batch([c], setup.pad_id)
            pad = width - b["input_ids"].shape[1]
            item = {k: torch.nn.functional.pad(v[0], (0, pad), value=(-100 if k == "labels" else
                                                                      (setup.pad_id if k == "input_ids" else 0)))
                    for k, v in b.items()}  # fmt: skip
            train_items.append(item)
        task = LMTask()
        prepared = prepare_model(model, task)  # wraps the tracked modules in place: run the EK-FAC rows last
        analyzer = Analyzer(analysis_name="lm", model=prepared, task=task, output_dir=scratch_dir(
            "kronfluence-"), disable_tqdm=True, disable_model_save=True, cpu=True)  # fmt: skip
        started = time.perf_counter()
        fit = {"covariance_max_examples": EKFAC_FIT_EXAMPLES, "lambda_max_examples": EKFAC_FIT_EXAMPLES}
        analyzer.fit_all_factors(factors_name="ekfac", dataset=Rows(train_items), per_device_batch_size=8,
                                 factor_args=FactorArguments(strategy="ekfac", **fit),
                                 overwrite_output_dir=True)  # fmt: skip
        setup.timings["ekfac_factors_s"] = time.perf_counter() - started
        memo.update(analyzer=analyzer, train_set=Rows(train_items), counter=0)
    analyzer, train_set = memo["analyzer"], memo["train_set"]
    owners = [c.contribution for c in setup.chunks]

    def batch(queries: list[Query]) -> list[dict[str, float]]:
        memo["counter"] += 1
        name = f"q{memo['counter']}"
        qwidth = max(len(q.prompt) + len(q.output) for q in queries)
        items = []
        for q in queries:
            b = _query_batch(q)
            pad = qwidth - b["input_ids"].shape[1]
            items.append({k: torch.nn.functional.pad(v[0], (0, pad), value=(-100 if k == "labels" else 0))
                          for k, v in b.items()})  # fmt: skip
        analyzer.compute_pairwise_scores(
            scores_name=name, factors_name="ekfac", query_dataset=Rows(items), train_dataset=train_set,
            per_device_query_batch_size=len(items), per_device_train_batch_size=8, overwrite_output_dir=True,
            score_args=ScoreArguments(damping_factor=damping))  # fmt: skip
        matrix = analyzer.load_pairwise_scores(scores_name=name)["all_modules"].double()
        return [_by_owner(owners, matrix[j].tolist()) for j in range(len(queries))]

    return Batched(batch)


# ------------------------------------------------------------------ metrics


class Batched:
    """A method that scores all queries in one call (its per-query time is the total over the count).

    ``shared`` names work that the variants of one peer share (e.g. traker's query gradients, kept after the
    first variant): only the first variant's time is a measurement, the others report None."""

    def __init__(self, batch: Callable[[list[Query]], list[dict[str, float]]], shared: str | None = None) -> None:
        self.batch, self.shared = batch, shared


SHARED_TIMED: dict[str, set[int]] = {}


def _by_owner(owners: list[str], values: list[float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for owner, value in zip(owners, values, strict=True):
        out[owner] = out.get(owner, 0.0) + value
    return out


def _run_all(method, queries: list[Query]) -> tuple[list[dict[str, float]], list[float]]:
    if isinstance(method, Batched):
        started = time.perf_counter()
        results = method.batch(queries) if queries else []
        per = 1000 * (time.perf_counter() - started) / max(1, len(queries))
        if method.shared and SHARED_TIMED.get(method.shared, set()) & {id(q) for q in queries}:
            return results, []
        SHARED_TIMED.setdefault(method.shared or "", set()).update(id(q) for q in queries)
        return results, [per] * len(queries)
    results, times = [], []
    for q in queries:
        started = time.perf_counter()
        result = method(q)
        elapsed = 1000 * (time.perf_counter() - started)
        results.append(dict(result))
        if not isinstance(result, Memo):
            times.append(elapsed)
    return results, times


def evaluate(method: Method, queries: list[Query], corpus: Corpus, owners: dict[str, str],
             keep: list | None = None) -> dict[str, Any]:  # fmt: skip
    """recall@1, MRR, author share (median), copy shares, score time p50 of one method over the queries
    (``keep`` receives the per-query score maps)."""
    group: dict[int, set[str]] = {}
    for copy, (src, _) in corpus.copies.items():
        group.setdefault(src, set()).add(str(copy + 1))
    verbatim = {src: str(copy + 1) for copy, (src, kind) in corpus.copies.items() if kind == "verbatim"}
    hits, rr, shares, orig, copier = [], [], [], [], []
    results, times = _run_all(method, queries)
    if keep is not None:
        keep.extend(results)
    for q, scores in zip(queries, results, strict=True):
        good = {str(q.doc + 1)} | group.get(q.doc, set())
        ranked = sorted(scores, key=lambda k: (-scores[k], int(k)))
        rank = next((i + 1 for i, k in enumerate(ranked) if k in good and scores[k] > 0), None)
        hits.append(1.0 if rank == 1 else 0.0)
        rr.append(1.0 / rank if rank else 0.0)
        paid = contributor_shares(POOL, {k: v for k, v in scores.items() if k in owners}, owners, fallback="none")
        author = owners[str(q.doc + 1)]
        shares.append(paid.get(author, 0) / POOL)
        if q.doc in verbatim:
            orig.append(paid.get(author, 0) / POOL)
            copier.append(paid.get(owners[verbatim[q.doc]], 0) / POOL)
    return {
        "recall_at_1": statistics.fmean(hits) if hits else None,
        "mrr": statistics.fmean(rr) if rr else None,
        "author_share": statistics.median(shares) if shares else None,
        "author_share_mean": statistics.fmean(shares) if shares else None,
        "copy_original_share": statistics.fmean(orig) if orig else None,
        "copy_copier_share": statistics.fmean(copier) if copier else None,
        "score_ms_p50": statistics.median(times) if times else None,
        "timed_queries": len(times),
        "queries": len(queries),
    }


# ------------------------------------------------------------------ LM-LDS


def retrained_likelihoods(texts: list[str], base: str, config: TrainConfig, queries: list[Query]) -> list[float]:
    """Train a LoRA on ``texts`` the way ``train_model`` does (the factory's chunking, split, LoRA init and
    ``train_loop``, same seed and steps) but without the attribution artefacts, which the ground truth does not
    need; return each query's teacher-forced output log-likelihood under the trained adapter."""
    from attribution_oracle.factory.chunking import split_eval, tokenize_documents
    from attribution_oracle.factory.fetch import Document
    from attribution_oracle.factory.peft_lora import attach_lora
    from attribution_oracle.factory.trainer import train_loop
    from attribution_oracle.factory.version_sources import ApprovedContribution
    from attribution_oracle.models import load_base_model

    loaded = load_base_model(base)
    docs = [Document(ApprovedContribution(1, i + 1, "", ""), t.encode()) for i, t in enumerate(texts)]
    train, _ = split_eval(tokenize_documents(docs, loaded.tokenizer, config.seq_len), config.eval_fraction,
                          config.seed)  # fmt: skip
    model = attach_lora(loaded.model, config.lora_config(), config.seed)
    # the index capture (hooks that only read the backward) is an artefact too: off, the same training is faster
    plain = dataclasses.replace(config, index_capture="pass")
    with tempfile.TemporaryDirectory(prefix="lm-lds-") as run_dir:
        train_loop(model, loaded.tokenizer, train, plain, Path(run_dir))
    model.eval()
    task = LanguageModelTask()
    with torch.no_grad():
        return [float(task.measurement(model, _query_batch(q))[0]) for q in queries]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def lds_truth(texts: list[str], masks: np.ndarray, base: str, config: TrainConfig, queries: list[Query],
              stop_at: float | None = None) -> tuple[np.ndarray, list[int]]:  # fmt: skip
    """Ground truth ``[subsets, queries]``: each subset retrained (``retrained_likelihoods``), every subset cached
    under ``benchmarks/.cache/lm_lds`` by a key of its configuration (base, settings, texts, queries). No retrain
    starts after the epoch time ``stop_at``; returns the rows of the finished subsets and their indices (a later
    run with the same configuration retrains only the missing ones)."""
    truth = np.zeros((len(masks), len(queries)))
    done: list[int] = []
    common = {"base": base, "config": truth_config(config), "queries": [[q.prompt, q.output] for q in queries],
              "v": TRUTH_VERSION}  # fmt: skip
    for s, mask in enumerate(masks):
        keep = [texts[i] for i in np.flatnonzero(mask)]
        path = CACHE / "lm_lds" / f"{base.replace(':', '')}-{_digest({**common, 'texts': keep})}.json"
        if path.is_file():
            truth[s] = json.loads(path.read_text())["loglik"]
            done.append(s)
            continue
        if stop_at is not None and time.time() >= stop_at:
            continue
        started = time.perf_counter()
        values = retrained_likelihoods(keep, base, config, queries)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"loglik": values, "seconds": time.perf_counter() - started}).encode()
        atomic_write(path, lambda handle, record=record: handle.write(record))
        truth[s] = values
        done.append(s)
        print(f"  lds subset {s + 1}/{len(masks)} retrained in {time.perf_counter() - started:.1f} s", flush=True)
    return truth[done], done


def stop_time(hhmm: str | None, now: dt.datetime | None = None) -> float | None:
    """The epoch time of ``HH:MM`` UTC today (``--lds-stop-at``), or ``None``."""
    if not hhmm:
        return None
    try:
        hour, minute = (int(x) for x in hhmm.split(":"))
        moment = (now or dt.datetime.now(dt.UTC)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError as exc:
        raise SystemExit(f"error: --lds-stop-at wants HH:MM (UTC), got {hhmm!r}") from exc
    return moment.timestamp()


TRUTH_VERSION = 6  # the cache key's version of the ground truth (ARTEFACTS_VERSION when it was made)
# settings that shape only the attribution artefacts, not the trained adapter: the ground truth's cache key holds
# them at these values (those of the cached runs), so trying another index does not retrain the 32 subsets
# (``lm_lds`` checks that the retrain reproduces the full model's likelihoods, whatever the index settings)
INDEX_ONLY = {"attribution_checkpoints": 1, "proj_dim": 256, "index_batch_size": 8, "precondition": True,
              "normalize_gradients": True, "index_capture": "backward", "span_min_len": None}  # fmt: skip
INDEX_ONLY_NEW = ("gradient_estimator",)  # added after the cache was made: left out of the key


def truth_config(config: TrainConfig) -> dict[str, Any]:
    """``config.to_dict()`` with the index-only settings fixed (see ``INDEX_ONLY``): the ground truth's key."""
    data = {k: v for k, v in config.to_dict().items() if k not in INDEX_ONLY_NEW}
    return data | {k: v for k, v in INDEX_ONLY.items() if k in data}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their average rank (as Spearman's correlation takes them)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (NaN when either side is constant)."""
    ra, rb = _ranks(a) - (len(a) - 1) / 2, _ranks(b) - (len(b) - 1) / 2
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def lds_of(preds: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of the Spearman correlation, across subsets, of predicted and actual outputs."""
    return lds_with_error(preds, truth)[0]


def lds_with_error(preds: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``lds_of`` and its standard error over the queries."""
    rho = [_spearman(preds[:, j], truth[:, j]) for j in range(truth.shape[1])]
    rho = [r for r in rho if np.isfinite(r)]
    if not rho:
        return 0.0, float("nan")
    return float(np.mean(rho)), float(np.std(rho, ddof=1) / np.sqrt(len(rho))) if len(rho) > 1 else float("nan")


def lm_lds(args, corpus: Corpus, base: str, names: list[str]) -> dict[str, Any]:
    """LM-LDS on the first ``--lds-docs`` originals (see the module docstring)."""
    n = args.lds_docs
    texts, contributors = corpus.texts[:n], corpus.contributors[:n]
    facts = [f for f in corpus.facts if f.doc < n]
    family = base.split(":")[0]
    config = config_for(
        base, args.lds_steps or LDS_STEPS[family], **LDS_SETTINGS.get(family, {}), **index_settings(args)
    )
    full = trained_model(texts, contributors, base, config, f"lds-full-{base.replace(':', '')}")
    sub = Corpus(texts, contributors, facts, {})
    setup = make_setup(full, corpus=sub, proj_dim=config.proj_dim)
    queries = make_queries(sub, setup.tokenizer, args.lds_queries, seed=1)
    rng = np.random.default_rng(args.seed)
    masks = np.zeros((args.lds_subsets, n), dtype=bool)
    for s in range(args.lds_subsets):
        masks[s, rng.permutation(n)[: n // 2]] = True
    run_key = _digest({"part": "lds", "base": base, "manifest": full["manifest"], "masks": masks.tolist(),
                       "queries": [[q.prompt, q.output] for q in queries], "v": ARTEFACTS_VERSION})  # fmt: skip
    partial = partial_path(args, "lds")
    done = read_partial(partial, run_key) if args.resume else {}
    # the cheap retrain is the factory's training: on the full set it reproduces the trained model's likelihoods
    # (checked first, so a retrain that drifted from the factory fails before an hour of subsets; a resumed run
    # whose partial file holds scored methods passed it: they are scored only after the check)
    with torch.no_grad():
        direct = [float(LanguageModelTask().measurement(setup.model32, _query_batch(q))[0]) for q in queries[:3]]
    check = None if done.get("methods") else retrained_likelihoods(texts, base, config, queries[:3])
    if check is not None:
        assert np.allclose(check, direct, rtol=1e-4, atol=1e-3), f"retrain {check} != factory model {direct}"
    print(f"  lds retrain check: {check or 'passed in the run that left ' + partial.name} = factory {direct}")
    ids = [str(i + 1) for i in range(n)]
    out: dict[str, Any] = {}
    kept: dict[str, list] = {}
    # the methods score first (their scores do not depend on the ground truth, and are saved as they finish), so
    # a run that must stop before every subset is retrained still gives each method's LDS on the finished ones
    for name in names:
        if name in done.get("methods", {}) and not done["methods"][name].get("error"):
            out[name], kept[name] = done["methods"][name], done.get("kept", {}).get(name, [])
            print(f"  lds {name}: scores from {partial.name}", flush=True)
            continue
        started = time.perf_counter()
        try:
            kept[name], peak = measured(name, lambda name=name: _run_all(method_factory(name)(setup), queries)[0])
            out[name] = {"seconds": time.perf_counter() - started, "peak_rss_mb": peak}
        except Exception as exc:  # a peer that cannot run is reported, not hidden
            out[name] = {"lds": None, "seconds": time.perf_counter() - started, "error": f"{type(exc).__name__}: {exc}"}
        print(f"  lds {name}: scored, {out[name]}", flush=True)
        write_partial(partial, run_key, {"methods": out, "kept": kept})
    started = time.perf_counter()
    truth, finished = lds_truth(texts, masks, base, config, queries, stop_time(args.lds_stop_at))
    truth_seconds = time.perf_counter() - started
    masks = masks[finished]
    for name, results in kept.items():
        if out[name].get("error") or len(finished) < 3:
            continue
        preds = np.stack([masks.astype(float) @ np.array([r.get(i, 0.0) for i in ids]) for r in results], 1)
        out[name]["lds"], out[name]["lds_se"] = lds_with_error(preds, truth)
        print(f"  lds {name}: {out[name]}", flush=True)
    info = {
        "docs": n,
        "subsets": len(finished),
        "subsets_planned": args.lds_subsets,
        "queries": len(queries),
        "config": config.to_dict(),
        "truth_seconds": truth_seconds,
        "retrain_check": [check, direct],
        "truth_loglik_std_over_subsets": float(truth.std(0).mean()) if len(finished) else None,
        "full_model": full,
        "rule_sweep": lds_rule_sweep(kept, masks, truth, ids) if len(finished) >= 3 else [],
        "author_only_lds": author_only_lds(queries, masks, truth) if len(finished) >= 3 else None,
    }
    return {"methods": out, "info": info}  # fmt: skip


def author_only_lds(queries: list[Query], masks: np.ndarray, truth: np.ndarray) -> list[float]:
    """LDS and its standard error of the score map that gives the fact's document 1 and every other 0: how much of
    the ground truth is explained by whether the document that states the fact was trained on. A rule that pays
    the author most of the pool cannot rank subsets much better than this on the queries where it does so."""
    preds = np.stack([masks[:, q.doc].astype(float) for q in queries], 1)
    return list(lds_with_error(preds, truth))


LDS_STEPS = {"tiny": 40, "smollm2": 4}
# tiny:0 learns slowly at the fact-tracing rate; LM-LDS retrains 33 times, so it takes fewer, larger steps.
# SmolLM2's reduced config, to fit 33 trainings in about an hour on a shared 2-core machine (one retrain ~2 min on
# one core at load 7, against 12-44 min for 24 steps of 8 rows): 4 steps of 2 packed rows of 256 tokens (8 rows,
# about half of a 50-contribution half-subset), at a higher rate so the adapter moves in 4 steps
LDS_SETTINGS = {"tiny": {"lr": 1e-2}, "smollm2": {"batch_size": 2, "lr": 5e-3}}


def lds_rule_sweep(kept: dict[str, list], masks: np.ndarray, truth: np.ndarray, ids: list[str]) -> list[dict]:
    """LM-LDS of candidate combine rules on the signals' recorded scores (no retraining needed)."""
    from attribution_oracle.attribution.combine import CombineRule, combine

    names = ("ours:gradient", "ours:span", "ours:lexical")
    if not all(kept.get(n) for n in names):
        return []
    rows = []
    candidates = [
        CombineRule(g, s, lex, power)
        for g, s, lex in [
            (0.2, 0.2, 0.6),
            (0.5, 0.5, 0.0),
            (0.34, 0.33, 0.33),
            (0.6, 0.2, 0.2),
            (0.8, 0.1, 0.1),
            (1.0, 0.0, 0.0),
            (0.5, 0.0, 0.5),
        ]
        for power in (1, 2, 4, 8)
    ]
    # session 5: the gradient side linear, the span and lexical sides sharpened (the form of FACTORY_RULE)
    candidates += [CombineRule(g, s, lex, power, gradient_power=1) for g, s, lex in [(0.2, 0.2, 0.6), (0.3, 0.0, 0.7),
                   (0.4, 0.0, 0.6), (0.3, 0.175, 0.525)] for power in (8, 16)]  # fmt: skip
    for rule in candidates:
        results = [combine(a, b, rule, c) for a, b, c in zip(*(kept[n] for n in names), strict=True)]
        preds = np.stack([masks.astype(float) @ np.array([r.get(i, 0.0) for i in ids]) for r in results], 1)
        rows.append({"rule": rule.to_dict(), "lds": lds_of(preds, truth)})
    return rows


# ------------------------------------------------------------------ driver


def make_setup(info: dict, corpus: Corpus, proj_dim: int) -> Setup:
    """Load the trained model's scorer (as the oracle does) and a float32 copy of the model for the peers."""
    from attribution_oracle.factory.chunking import tokenize_documents
    from attribution_oracle.factory.fetch import Document
    from attribution_oracle.factory.peft_lora import attach_lora, load_adapter_state
    from attribution_oracle.factory.version_sources import ApprovedContribution
    from attribution_oracle.models import load_base_model, unpack_adapter

    root = Path(info["root"])
    store = BlobStore(root / "blobs")
    scorer = load_model_scorer(store, info["manifest"], root / "scorers")
    manifest = scorer.manifest
    base = load_base_model(manifest["base_model"]["spec"])
    adapter = unpack_adapter(store.get(manifest["adapter"]["sha256"]))
    model32 = attach_lora(base.model, adapter.lora_config, manifest["seeds"]["lora_init"])
    load_adapter_state(model32, adapter.state_dict)
    model32.eval()
    if hasattr(model32, "set_attn_implementation"):
        model32.set_attn_implementation("eager")
    docs = [Document(ApprovedContribution(1, i + 1, "", ""), t.encode()) for i, t in enumerate(corpus.texts)]
    chunks = tokenize_documents(docs, base.tokenizer, manifest["chunking"]["seq_len"])
    pad = base.tokenizer.pad_token_id if base.tokenizer.pad_token_id is not None else base.tokenizer.eos_token_id
    return Setup(corpus, scorer, base.tokenizer, model32, chunks, int(pad), root / "run", proj_dim)


def fmt_table(rows: dict[str, dict[str, Any]], keys: list[str]) -> str:
    """A markdown table of the methods' metrics."""

    def cell(v: Any) -> str:
        return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in rows.items():
        label = f"{name} ({row['variant']})" if row.get("variant", name) != name else name
        lines.append(f"| {label} | " + " | ".join(cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def partial_path(args, part: str) -> Path:
    """Where a part's finished rows go while the run goes on (``<results>.<part>.partial.json``)."""
    out = Path(args.out) if args.out else RESULTS / "lm_attribution.json"
    return out.with_name(f"{out.stem}.{part}.partial.json")


def write_partial(path: Path, run_key: str, rows: dict[str, Any]) -> None:
    """Save the rows finished so far, atomically, after every method (a run that is stopped or killed keeps
    them; ``--resume`` reuses them when ``run_key``, a digest of everything that decides the rows, matches)."""
    record = (json.dumps({"run_key": run_key, **rows}, indent=2, sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(record))


def read_partial(path: Path, run_key: str) -> dict[str, Any]:
    """The rows a stopped run of the same ``run_key`` left in ``path`` (empty if none, or from another run)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if data.get("run_key") == run_key else {}


def measured(name: str, run: Callable[[], Any]) -> tuple[Any, float | None]:
    """``run()`` and the peak resident memory (MiB) of the process while it ran (heap trimmed first, so one
    method's garbage is not counted against the next)."""
    release_memory()
    with PeakRss() as peak:
        value = run()
    return value, (round(peak.peak_mb, 1) if peak.peak_mb is not None else None)


def combine_sweep(kept: dict[str, list], queries: list[Query], corpus: Corpus, owners: dict[str, str]) -> list:
    """Every candidate combine rule on the signals' recorded scores (how ``FACTORY_RULE`` was chosen)."""
    from attribution_oracle.attribution.combine import CombineRule, combine

    names = ("ours:gradient", "ours:span", "ours:lexical")
    if not all(kept.get(n) for n in names):
        return []
    rows = []
    weights = [(0.5, 0.5, 0.0), (0.25, 0.25, 0.5), (0.2, 0.2, 0.6), (0.15, 0.15, 0.7), (0.1, 0.1, 0.8),
               (0.34, 0.33, 0.33), (0.3, 0.0, 0.7), (0.0, 0.0, 1.0)]  # fmt: skip
    candidates = [CombineRule(g, s, lex, power) for g, s, lex in weights for power in (1, 2, 4, 8, 16)]
    candidates += [CombineRule(g, s, lex, power, gradient_power=1) for g, s, lex in [(0.2, 0.2, 0.6), (0.3, 0.0, 0.7),
                   (0.4, 0.0, 0.6), (0.3, 0.175, 0.525)] for power in (8, 16)]  # fmt: skip
    for rule in candidates:
        combined = [combine(a, b, rule, c) for a, b, c in zip(*(kept[n] for n in names), strict=True)]
        it = iter(combined)
        row = evaluate(lambda q, it=it: next(it), queries, corpus, owners)
        rows.append({"rule": rule.to_dict(), **{k: row[k] for k in ("recall_at_1", "mrr", "author_share",
                     "copy_original_share", "copy_copier_share")}})  # fmt: skip
    for row in sorted(rows, key=lambda r: (-r["author_share"], -r["recall_at_1"]))[:8]:
        print(f"  sweep {row}", flush=True)
    return rows


SWEEP = {
    "less": ["less", "less:no-precond", "less:no-norm", "less:plain"],
    "trak": ["trak:proj=64", "trak:proj=128", "trak:proj=256", "trak:proj=512", "trak:proj=2048"],
    "ekfac": ["ekfac:damping=1e-8", "ekfac:damping=1e-4", "ekfac:damping=heuristic"],
}
METRICS = [
    "recall_at_1",
    "mrr",
    "author_share",
    "copy_original_share",
    "copy_copier_share",
    "score_ms_p50",
    "peak_rss_mb",
]


def method_factory(name: str) -> Callable[[Setup], Method]:
    """The method called ``name``: ``ours``, ``ours:<signal>``, ``bm25``, or a peer with its knob, e.g.
    ``less:no-precond``, ``trak:proj=1024``, ``ekfac:damping=heuristic`` (a bare peer name uses its default)."""
    family, _, knob = name.partition(":")
    if family == "ours":
        return lambda s: ours(s, knob or None)
    if family == "bm25" and not knob:
        return bm25
    if family == "less":
        flags = {"": {}, "no-precond": {"precondition": False}, "no-norm": {"normalise": False},
                 "plain": {"precondition": False, "normalise": False}}  # fmt: skip
        if knob in flags:
            return lambda s: less(s, **flags[knob])
    if family == "trak" and (not knob or knob.startswith("proj=")):
        dim = int(knob.removeprefix("proj=")) if knob else None
        return lambda s: trak(s, dim)
    if family == "ekfac" and (not knob or knob.startswith("damping=")):
        value = knob.removeprefix("damping=") if knob else "1e-8"
        damping = None if value == "heuristic" else float(value)
        return lambda s: ekfac(s, damping)
    raise SystemExit(f"error: unknown method {name!r}")


def expand_methods(spec: str, sweep: bool) -> list[str]:
    """The comma-separated methods, each peer family replaced by its knob variants when ``sweep``."""
    out: list[str] = []
    for name in spec.split(","):
        out += SWEEP[name] if sweep and name in SWEEP else [name]
    return out


def best_variants(rows: dict[str, dict], key: Callable[[dict], tuple]) -> dict[str, str]:
    """For every peer family with several variants in ``rows``, the variant with the largest ``key``."""
    best: dict[str, str] = {}
    for name, row in rows.items():
        family = name.split(":")[0]
        if family not in SWEEP or row.get("error") or row.get("recall_at_1", 0) is None or row.get("lds", 0) is None:
            continue
        if family not in best or key(row) > key(rows[best[family]]):
            best[family] = name
    return best


def summarise(rows: dict[str, dict], best: dict[str, str]) -> dict[str, dict]:
    """The table's rows: every non-peer method, and each peer family once, as its best variant (a family whose
    variants all failed keeps their rows, errors included)."""
    out: dict[str, dict] = {}
    for name, row in rows.items():
        family = name.split(":")[0]
        if family not in SWEEP or family not in best:
            out[name] = row
        elif best[family] == name:
            out[family] = {**row, "variant": name}
    return out


def fill_shared_times(rows: dict[str, dict]) -> None:
    """Variants whose query-time work was shared with an earlier variant report that variant's time."""
    for name, row in rows.items():
        if "score_ms_p50" in row and row["score_ms_p50"] is None and row.get("recall_at_1") is not None:
            family = name.split(":")[0]
            timed = [r["score_ms_p50"] for n, r in rows.items() if n.split(":")[0] == family and r["score_ms_p50"]]
            if timed:
                row["score_ms_p50"] = timed[0]
                row["score_ms_shared"] = True


def fact_tracing(args, corpus: Corpus, config: TrainConfig, names: list[str]) -> dict[str, Any]:
    """Part a: train the Datanet (or reuse the cached run) and evaluate every method."""
    info = trained_model(corpus.texts, corpus.contributors, args.base, config, args.base.replace(":", ""))
    print(
        f"trained: loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}, {info['total_seconds']:.0f} s", flush=True
    )
    setup = make_setup(info, corpus, config.proj_dim)
    owners = {str(i + 1): address(c) for i, c in enumerate(corpus.contributors)}
    queries = make_queries(corpus, setup.tokenizer, args.queries, args.seed)
    greedy = [] if args.no_greedy else greedy_queries(setup.model32, setup.tokenizer, queries)
    print(f"queries: {len(queries)} teacher-forced, {len(greedy)} correct greedy answers", flush=True)
    run_key = _digest({"part": "facts", "base": args.base, "manifest": info["manifest"], "greedy": len(greedy),
                       "queries": [[q.prompt, q.output] for q in queries], "v": ARTEFACTS_VERSION})  # fmt: skip
    partial = partial_path(args, "facts")
    done = read_partial(partial, run_key) if args.resume else {}
    facts, facts_greedy, errors, kept = {}, {}, {}, {}
    for name in names:
        if name in done.get("facts", {}) and name not in done.get("errors", {}):
            facts[name], kept[name] = done["facts"][name], done.get("kept", {}).get(name, [])
            if name in done.get("facts_greedy", {}):
                facts_greedy[name] = done["facts_greedy"][name]
            print(f"{name}: {facts[name]} (from {partial.name})", flush=True)
            continue
        started = time.perf_counter()

        def run(name: str = name) -> None:
            method = method_factory(name)(setup)
            kept[name] = []
            facts[name] = evaluate(method, queries, corpus, owners, kept[name])
            if greedy:
                facts_greedy[name] = evaluate(method, greedy, corpus, owners)

        try:
            peak = measured(name, run)[1]
            facts[name] |= {"peak_rss_mb": peak, "seconds": time.perf_counter() - started}
        except Exception as exc:  # a peer that cannot run is reported, not hidden
            errors[name] = f"{type(exc).__name__}: {exc}"
            facts[name] = {k: None for k in METRICS}
        print(f"{name}: {facts[name]} ({time.perf_counter() - started:.0f} s){' ' + errors.get(name, '')}", flush=True)
        write_partial(partial, run_key, {"facts": facts, "facts_greedy": facts_greedy, "errors": errors,
                                         "kept": kept})  # fmt: skip
    fill_shared_times(facts)
    return {"facts": facts, "facts_greedy": facts_greedy, "errors": errors, "train": info, "queries": len(queries),
            "greedy_correct": len(greedy), "combine_sweep": combine_sweep(kept, queries, corpus, owners),
            "timings": {k: v for k, v in setup.timings.items() if not k.startswith("_")}}  # fmt: skip


def keep_other_part(path: Path, result: dict, facts: bool, lds: bool) -> None:
    """A run of one part only (``--lds-only``, or no ``--lds``) keeps the other part's results already in ``path``
    (e.g. fact tracing on SmolLM2 and LM-LDS on tiny:0, run separately); ``meta.parts`` says where each came from."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    here = {"base": result["meta"]["base"], "date": result["meta"]["date"]}
    parts = dict(old.get("meta", {}).get("parts", {}))
    if facts:
        parts["facts"] = here
    if lds:
        parts["lds"] = here
    if not lds and old.get("lds"):
        result["lds"] = old["lds"]
        for key in ("lds_detail", "lds_info"):
            result["meta"][key] = old.get("meta", {}).get(key)
        result["meta"]["best_variant"]["lds"] = old.get("meta", {}).get("best_variant", {}).get("lds", {})
    if not facts and old.get("facts"):
        result["facts"], result["facts_greedy"] = old["facts"], old.get("facts_greedy", {})
        result["meta"]["best_variant"]["facts"] = old.get("meta", {}).get("best_variant", {}).get("facts", {})
        for key, value in old.get("meta", {}).items():
            if key not in ("lds_detail", "lds_info", "parts", "best_variant"):
                result["meta"].setdefault("facts_run", {})[key] = value
    for key, value in old.items():  # parts added by hand (e.g. a carried-over table) stay
        result.setdefault(key, value)
    result["meta"]["parts"] = parts


def index_settings(args) -> dict[str, Any]:
    """The ``TrainConfig`` overrides of the index ablations (``--plain-gradients``, ``--index-capture``,
    ``--gradient-estimator``, ``--proj-dim``, ``--attribution-checkpoints``); both parts use them."""
    out: dict[str, Any] = {"precondition": False, "normalize_gradients": False} if args.plain_gradients else {}
    for name in ("index_capture", "gradient_estimator", "proj_dim", "attribution_checkpoints"):
        if getattr(args, name, None) is not None:
            out[name] = getattr(args, name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="tiny:0", help="tiny:0 (fast mode) or smollm2")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default by base)")
    parser.add_argument("--queries", type=int, default=120, help="teacher-forced fact queries")
    parser.add_argument("--methods", default="ours,ours:gradient,ours:span,ours:lexical,bm25,less,trak,ekfac",
                        help="comma-separated; a peer may name its knob: less:no-precond, trak:proj=1024, "
                             "ekfac:damping=heuristic")  # fmt: skip
    parser.add_argument("--sweep", action="store_true", help="run every peer at each value of its main knob "
                        "(LESS: preconditioning/normalisation, TRAK: projection dim, EK-FAC: damping); the table "
                        "shows each peer at its best")  # fmt: skip
    parser.add_argument("--no-greedy", action="store_true", help="skip the model's own greedy answers")
    parser.add_argument("--lds", action="store_true", help="also run LM-LDS (part b)")
    parser.add_argument("--lds-only", action="store_true", help="run only LM-LDS (part b), not fact tracing")
    parser.add_argument("--lds-docs", type=int, default=100)
    parser.add_argument("--lds-subsets", type=int, default=32)
    parser.add_argument("--lds-queries", type=int, default=40)
    parser.add_argument("--lds-steps", type=int, default=None, help=f"training steps of LM-LDS (default {LDS_STEPS})")
    parser.add_argument("--lds-stop-at", default=None, metavar="HH:MM",
                        help="start no LM-LDS retrain after this UTC time; LDS is taken over the subsets "
                             "finished (cached: a rerun adds the rest)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plain-gradients",
        action="store_true",
        help="ablation: no AdamW preconditioning and no unit normalisation of the gradient features",
    )
    parser.add_argument(
        "--index-capture",
        choices=["backward", "pass", "per-example"],
        default=None,
        help="how the factory takes the index's gradients (default: the factory's, backward)",
    )
    parser.add_argument("--gradient-estimator", choices=["graddot", "influence"], default=None,
                        help="ablation: the index's estimator (default: the factory's, graddot)")  # fmt: skip
    parser.add_argument("--proj-dim", type=int, default=None, help="ablation: projection dimension of our index "
                        "(and the LESS peer's; default 1024 on tiny, 512 on SmolLM2)")  # fmt: skip
    parser.add_argument("--attribution-checkpoints", type=int, default=None,
                        help="ablation: checkpoints in our index (default: the factory's, 1)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ekfac-fit-examples", type=int, default=None, metavar="N",
                        help="fit EK-FAC's covariance and eigenvalue correction on the first N training chunks "
                             "(kronfluence's covariance/lambda_max_examples; default all)")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="reuse the rows a stopped run of the same "
                        "configuration left in <results>.facts.partial.json / <results>.lds.partial.json")  # fmt: skip
    parser.add_argument("--out", default=None, help="results file (default benchmarks/results/lm_attribution.json)")
    parser.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global EKFAC_FIT_EXAMPLES
    EKFAC_FIT_EXAMPLES = args.ekfac_fit_examples
    load_before = os.getloadavg()
    names = expand_methods(args.methods, args.sweep)
    for name in names:
        method_factory(name)  # unknown names fail before any training
    corpus = make_corpus(seed=args.seed)
    config = config_for(args.base, args.steps, **index_settings(args))
    print(f"corpus: {len(corpus.texts)} contributions, {len(set(corpus.contributors))} contributors, "
          f"{len(corpus.facts)} facts, {len(corpus.copies)} copies", flush=True)  # fmt: skip
    part_a = {} if args.lds_only else fact_tracing(args, corpus, config, names)
    facts = part_a.get("facts", {})
    lds_run = lm_lds(args, corpus, args.base, names) if args.lds or args.lds_only else {}
    lds = lds_run.get("methods", {})
    best_facts = best_variants(facts, lambda r: (r["mrr"], r["author_share"]))
    best_lds = best_variants(lds, lambda r: (r["lds"],))
    summary_facts, summary_lds = summarise(facts, best_facts), summarise(lds, best_lds)
    result = {
        "facts": {m: {k: r.get(k) for k in METRICS} for m, r in summary_facts.items()},
        "lds": {m: {k: r.get(k) for k in ("lds", "seconds", "peak_rss_mb")} for m, r in summary_lds.items()},
        "facts_greedy": part_a.get("facts_greedy", {}),
        "meta": {
            "base": args.base, "config": config.to_dict(), "train": part_a.get("train"),
            "queries": part_a.get("queries"), "greedy_correct": part_a.get("greedy_correct"),
            "errors": part_a.get("errors", {}), "timings": part_a.get("timings", {}),
            "contributions": len(corpus.texts), "contributors": len(set(corpus.contributors)),
            "signal_timing_queries": SIGNAL_TIMING, "best_variant": {"facts": best_facts, "lds": best_lds},
            "load_before": load_before, "load_after": os.getloadavg(), "threads": args.threads,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus", "date": dt.datetime.now(dt.UTC).isoformat(),
            "facts_detail": facts, "lds_detail": lds, "lds_info": lds_run.get("info"),
            "combine_sweep": part_a.get("combine_sweep", []),
        },
    }  # fmt: skip
    out = Path(args.out) if args.out else RESULTS / "lm_attribution.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    keep_other_part(out, result, facts=bool(facts), lds=bool(lds))
    atomic_write(out, lambda handle: handle.write((json.dumps(result, indent=2, sort_keys=True) + "\n").encode()))
    for part, ran in (("facts", not args.lds_only), ("lds", args.lds or args.lds_only)):
        if ran:  # the finished part replaces what it left (another part's stopped run keeps its file)
            partial_path(args, part).unlink(missing_ok=True)
    parts = [f"\n## LM attribution on {args.base} ({dt.date.today().isoformat()})\n\n",
             f"`nice -n 10 .venv/bin/python benchmarks/lm_attribution.py {shlex.join(sys.argv[1:])}` (load "
             f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {args.threads} threads)\n"]  # fmt: skip
    if facts:
        parts.append("\nFact tracing" + (" (each peer at its best knob value)" if args.sweep else "")
                     + f", {part_a['queries']} teacher-forced queries:\n\n"
                     + fmt_table(summary_facts, METRICS) + "\n")  # fmt: skip
        if len(summary_facts) < len(facts):
            parts.append("\nEvery variant:\n\n" + fmt_table(facts, METRICS) + "\n")
    if part_a.get("facts_greedy"):
        parts.append(f"\nThe model's own correct greedy answers ({part_a['greedy_correct']}):\n\n"
                     + fmt_table(part_a["facts_greedy"], METRICS) + "\n")  # fmt: skip
    if lds:
        info = lds_run["info"]
        parts.append(f"\nLM-LDS ({info['subsets']} of {info['subsets_planned']} half-subsets of {info['docs']} "
                     f"contributions, {info['queries']} queries, {info['config']['steps']} steps per retrain; "
                     "lds_se = standard error over the queries; "
                     "seconds = the method's own work)"
                     + (", each peer at its best knob value" if args.sweep else "") + ":\n\n"
                     + fmt_table(summary_lds, ["lds", "lds_se", "seconds", "peak_rss_mb"]) + "\n")  # fmt: skip
        if len(summary_lds) < len(lds):
            parts.append("\nEvery variant (a peer's later variants reuse its first one's gradients):\n\n"
                         + fmt_table(lds, ["lds", "lds_se", "seconds", "peak_rss_mb"]) + "\n")  # fmt: skip
        sweep = sorted(info["rule_sweep"], key=lambda r: -r["lds"])[:5]

        def label(rule: dict) -> str:
            power = f"power {rule['power']}" + (
                f" (gradient {rule['gradient_power']})" if rule.get("gradient_power") else ""
            )
            return f"{rule['gradient_weight']}/{rule['span_weight']}/{rule['lexical_weight']} {power}"

        if sweep:
            parts.append("\nLM-LDS of other combine rules on the same signals (best 5 of "
                         f"{len(info['rule_sweep'])}): " + "; ".join(
                             f"{label(r['rule'])}: {r['lds']:.3f}" for r in sweep) + "\n")  # fmt: skip
        parts.append(f"\nLM-LDS of the map that scores only the fact's own document: {info['author_only_lds'][0]:.3f} "
                     f"± {info['author_only_lds'][1]:.3f}\n")  # fmt: skip
    if part_a.get("errors"):
        parts.append("\n" + "\n".join(f"- {k} could not run: {v}" for k, v in part_a["errors"].items()) + "\n")
    print("".join(parts))
    if not args.no_markdown:
        append_section("".join(parts))


if __name__ == "__main__":
    main()
