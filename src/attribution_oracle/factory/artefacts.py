"""Attribution artefacts of a trained adapter, built once and kept in the content store.

- *Attribution checkpoints*: the adapter at the steps ``TrainConfig.snapshot_steps()`` (LoRA parameters
  only), each stored as an adapter blob (``models.pack_adapter``).
- *Gradient index*: an ``AttributionIndex`` (``Attributor`` with ``LanguageModelTask`` over the LoRA
  parameters, an ensemble over the checkpoints), one row per training chunk, row ids ``"<contribution>#<chunk>"``.
- *Span index*: ``attribution.spans.SpanIndex`` over each training contribution's training tokens, in training
  (approval) order.

A directory artefact is stored as one blob per file; the manifest lists ``{relative name: sha256}``, so any
node holding the store can rebuild the directory (``restore_directory``), every file verified on the way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from attribution_oracle.attribution import Attributor, LanguageModelTask
from attribution_oracle.factory.chunking import Chunk, example_batch
from attribution_oracle.factory.config import TrainConfig
from attribution_oracle.factory.eager_attention import eager_attention
from attribution_oracle.factory.factory_errors import ManifestError
from attribution_oracle.models import pack_adapter
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import validate_digest

__all__ = [
    "ESTIMATOR",
    "GRADIENT_ESTIMATORS",
    "build_gradient_index",
    "build_lexical_index",
    "build_span_index",
    "restore_directory",
    "store_checkpoints",
    "store_directory",
]

#: the default estimator of new indices (``TrainConfig.gradient_estimator``)
ESTIMATOR = "graddot"
#: what each ``TrainConfig.gradient_estimator`` means (the manifest's ``estimator`` field names one)
GRADIENT_ESTIMATORS = {
    "graddot": "score = query gradient . (minus) chunk loss gradient, both scaled by the AdamW preconditioner and "
    "projected (and unit-normalised with normalize): AdamW's own metric, LESS / TrackStar; chosen by LM-LDS on tiny:0 "
    "(benchmarks/lm_attribution.py), where every curvature inverse on top lowered it",
    "influence": "the same with the damped empirical Fisher of the projected chunk gradients inverted in between "
    "(damping 0.3 x its mean diagonal); the default before session 5",
}


def store_checkpoints(
    model: nn.Module, snapshots: dict[int, dict[str, torch.Tensor]], lora_config: dict, base_hash: str, store: BlobStore
) -> list[dict]:
    """Store each snapshot as an adapter blob; returns ``[{"step", "adapter_sha256"}]`` in step order."""
    from attribution_oracle.factory.peft_lora import adapter_state

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    current = {n: p.detach().clone() for n, p in params.items()}
    out = []
    try:
        for step in sorted(snapshots):
            with torch.no_grad():
                for name, value in snapshots[step].items():
                    params[name].copy_(value)
            digest = store.put_bytes(pack_adapter(adapter_state(model), lora_config, base_hash))
            out.append({"step": step, "adapter_sha256": digest})
    finally:
        with torch.no_grad():
            for name, value in current.items():
                params[name].copy_(value)
    return out


PRECONDITIONER_FILE = "preconditioner.safetensors"


def adam_preconditioner(model: nn.Module, optimizer_state: dict) -> dict[str, torch.Tensor]:
    """``(sqrt(v) + eps) ** -1/2`` per trainable parameter from AdamW's final second moments ``v`` (its state is
    keyed by the position of each trainable parameter, in model order), divided by its mean over all parameters.

    Applied to both the training and the query gradients, the inner product of the two becomes AdamW's own metric
    (``g_q . g_i / (sqrt(v) + eps)``), the optimizer-aware similarity of LESS / TrackStar."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    moments = optimizer_state["state"]
    out = {}
    for i, name in enumerate(names):
        v = moments[i]["exp_avg_sq"].detach().to(torch.float64) if i in moments else None
        out[name] = (v.sqrt() + 1e-8).rsqrt() if v is not None else torch.ones(())
    total = sum(float(t.sum()) for t in out.values())
    count = sum(t.numel() for t in out.values())
    return {n: (t / (total / count)).to(torch.float32).contiguous() for n, t in out.items()}


def load_preconditioner(path: Path) -> dict[str, torch.Tensor] | None:
    """The preconditioner stored in a gradient index directory, if any."""
    file = Path(path) / PRECONDITIONER_FILE
    if not file.is_file():
        return None
    from safetensors.torch import load_file

    return load_file(str(file))


def make_attributor(
    model: nn.Module,
    checkpoints: Sequence[dict[str, torch.Tensor]],
    config: dict,
    preconditioner: dict[str, torch.Tensor] | None = None,
) -> Attributor:
    """The ``Attributor`` a model's gradient index is built and queried with (same settings both sides)."""
    if config.get("preconditioner") and preconditioner is None:
        raise ManifestError("the gradient index is preconditioned but its preconditioner file is missing")
    return Attributor(
        model,
        LanguageModelTask(),
        checkpoints=list(checkpoints),
        estimator=config["estimator"],
        proj_dim=config["proj_dim"],
        seed=config["seed"],
        damping=config["damping"],
        batch_size=config.get("batch_size", 8),
        params=config.get("parameters"),
        preconditioner=preconditioner if config.get("preconditioner") else None,
        normalize=bool(config.get("normalize", False)),
    )


def build_gradient_index(
    model: nn.Module,
    snapshots: dict[int, dict[str, torch.Tensor]],
    chunks: Sequence[Chunk],
    pad_id: int,
    train: TrainConfig,
    path: Path,
    model_hash: str,
    optimizer_state: dict | None = None,
    captured: dict[int, dict[int, torch.Tensor]] | None = None,
    shards=None,
) -> dict:
    """Featurize every training chunk at every snapshot and write the index at ``path``; returns its settings.

    With ``train.precondition`` and the run's final optimizer state, the gradients of both sides are scaled by
    ``adam_preconditioner`` (stored next to the index); with ``train.normalize_gradients`` each chunk's and each
    query's features are unit-normalised per checkpoint.

    With ``train.index_capture == "backward"`` the per-chunk gradients are the ones ``captured`` in the training
    backward (``factory.index_capture``), the chunks the capture windows missed computed by a catch-up pass at their
    checkpoint; with ``"pass"`` every chunk is computed by that batched pass. Either way they go through the same
    preconditioner, projection, estimator and normalisation (``Attributor.featurize_gradients``). ``shards`` (an
    ``index_shards.IndexShardGroup``) shares the catch-up pass out over its processes (same bytes)."""
    preconditioner = None
    if train.precondition and optimizer_state is not None:
        preconditioner = adam_preconditioner(model, optimizer_state)
    settings = {
        "estimator": train.gradient_estimator,
        "task": "LanguageModelTask (query: log-likelihood of the output tokens given the prompt)",
        "proj_dim": train.proj_dim,
        "seed": train.seed,
        "damping": 0.3,  # used by "influence" only
        "batch_size": train.index_batch_size,
        "checkpoint_steps": sorted(snapshots),
        "rows": "one per training chunk, id '<contribution id>#<chunk index>'",
        "preconditioner": None if preconditioner is None else "(sqrt(AdamW v) + 1e-8)^-1/2 / mean, both sides",
        "normalize": bool(train.normalize_gradients),
        "capture": CAPTURE_RULES[train.index_capture],
    }
    from attribution_oracle.factory.index_capture import attributed_names

    parameters = attributed_names(model, train.attribution_layers)
    if parameters is not None:  # only the last layers' LoRA modules (absent: every trainable parameter)
        settings["parameters"] = parameters
    with eager_attention(model):
        attributor = make_attributor(model, [snapshots[s] for s in sorted(snapshots)], settings, preconditioner)
        if train.index_capture == "per-example":
            attributor.featurize(example_batch(chunks, pad_id))
        else:
            gradients = chunk_gradients(model, snapshots, chunks, pad_id, train, captured or {}, shards)
            attributor.featurize_gradients(gradients)
        attributor.build_index(path, [c.key for c in chunks], model_hash=model_hash)
    if preconditioner is not None:
        from safetensors.torch import save_file

        save_file(preconditioner, str(Path(path) / PRECONDITIONER_FILE))
    return settings


CAPTURE_RULES = {
    "backward": "each chunk's LoRA gradient from the training backward of its last step in the checkpoint's capture "
    "window (the shortest run of steps before it that trains every row), else from a packed forward/backward at the "
    "checkpoint (factory.index_capture)",
    "pass": "each chunk's LoRA gradient from a packed forward/backward at the checkpoint (factory.index_capture)",
    "per-example": "each chunk's LoRA gradient from torch.func per-example gradients at the checkpoint (the separate "
    "pass before the backward capture)",
}


def chunk_gradients(
    model: nn.Module,
    snapshots: dict[int, dict[str, torch.Tensor]],
    chunks: Sequence[Chunk],
    pad_id: int,
    train: TrainConfig,
    captured: dict[int, dict[int, torch.Tensor]],
    shards=None,
) -> list[dict[str, torch.Tensor]]:
    """Per checkpoint (in step order), ``{parameter: [n_chunks, *shape]}``: the captured chunk gradients, the
    missing ones computed at the checkpoint's parameters; the model's trainable parameters are restored after."""
    from attribution_oracle.factory.index_capture import catch_up_gradients, trainable_names

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    current = {n: p.detach().clone() for n, p in params.items()}
    names = trainable_names(model)
    out = []
    try:
        for step in sorted(snapshots):
            have = dict(captured.get(step, {}))
            missing = [i for i in range(len(chunks)) if i not in have]
            if missing:
                with torch.no_grad():
                    for name, value in snapshots[step].items():
                        params[name].copy_(value)
                catch_up = shards.catch_up if shards is not None else catch_up_gradients
                have.update(catch_up(model, chunks, missing, train.seq_len, train.batch_size, pad_id))
            matrix = torch.stack([have[i] for i in range(len(chunks))])
            grads, at = {}, 0
            for name in names:
                size = params[name].numel()
                grads[name] = matrix[:, at : at + size].reshape(len(chunks), *params[name].shape)
                at += size
            out.append(grads)
    finally:
        with torch.no_grad():
            for name, value in current.items():
                params[name].copy_(value)
    return out


def span_min_len(chunks: Sequence[Chunk], setting: int | None, doc_bytes: int | None = None) -> int:
    """The span side's ``min_len``: ``setting`` when given, else about 10 bytes of text in model tokens
    (``round(10 / mean bytes per token)``, at least 3), so a short rare answer such as " The Orvane." counts with
    a real tokenizer (3 tokens) while a byte-level tokenizer still needs 10 bytes; short spans weigh little anyway
    (a span's weight is the self-information of its tokens)."""
    if setting is not None:
        return int(setting)
    tokens = sum(len(c.tokens) for c in chunks)
    if not tokens or not doc_bytes:
        return 8
    return max(3, round(10 * tokens / doc_bytes))


def build_span_index(chunks: Sequence[Chunk], vocab_size: int, path: Path, min_len: int = 8) -> dict:
    """Span index over each training contribution's training tokens (its chunks in order), contributions in
    training order (= approval order, which the copies rule uses); returns its query settings."""
    from attribution_oracle.attribution.spans import SpanIndex

    documents: dict[str, list[int]] = {}
    for chunk in chunks:
        documents.setdefault(chunk.contribution, []).extend(chunk.tokens)
    SpanIndex.build(path, documents=list(documents.items()), vocab_size=vocab_size)
    return {
        "format": "attribution-oracle/span-index@1",
        "vocab_size": vocab_size,
        "documents": "each training contribution's training tokens (its chunks in order), id = contribution id",
        "query": "the output tokens; each span goes to its holder ranked highest by the lexical side (prompt and "
        "output), ties to the earliest (attribution.spans_query.attribute_ranked)",
        "split": "prompt-bm25",
        "min_len": int(min_len),
    }


def build_lexical_index(texts: Sequence[tuple[str, str]], path: Path) -> dict:
    """BM25 index (``attribution.lexical``) over the trained contributions' full texts; returns its settings."""
    from attribution_oracle.attribution.lexical import FORMAT, LexicalIndex

    index = LexicalIndex.build(path, texts)
    return {
        "format": FORMAT,
        "documents": "each trained contribution's whole text (utf-8, errors replaced), id = contribution id",
        "query": "words of the decoded prompt and output (special tokens skipped)",
        "k1": index.k1,
        "b": index.b,
    }


def store_directory(store: BlobStore, path: Path) -> dict[str, str]:
    """Store every file under ``path`` as a blob; returns ``{relative posix name: sha256}`` sorted by name."""
    files = sorted(p for p in Path(path).rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{path} holds no files")
    return {p.relative_to(path).as_posix(): store.put_file(p) for p in files}


def restore_directory(store: BlobStore, files: dict[str, str], dest: Path) -> Path:
    """Rebuild a directory from its blobs (each verified); reuses ``dest`` when it already holds exactly them."""
    dest = Path(dest)
    for name, digest in files.items():
        validate_digest(digest)
        if name.startswith("/") or ".." in Path(name).parts:
            raise ManifestError(f"unsafe file name {name!r} in a manifest")
    if dest.is_dir() and (dest / ".complete").is_file():
        return dest
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    for name, digest in files.items():
        store.copy_to(digest, staging / name)
    (staging / ".complete").write_text("")
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, dest)
    return dest
