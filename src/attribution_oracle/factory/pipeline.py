"""ModelFactory end to end: verified data -> LoRA training -> adapter, attribution artefacts, manifest.

    result = train_model(source, store, ["1@1"], base_spec="smollm2", config=TrainConfig(steps=30),
                         run_dir=home / "runs" / run_name(...))

Everything is checked before anything is written: the data is fetched and verified first, then the run
directory is created (or an existing one checked to hold the same run, which resumes it).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from attribution_oracle.attribution.combine import FACTORY_RULE
from attribution_oracle.attribution.duplicates import RULE as COPIES_RULE
from attribution_oracle.attribution.duplicates import copy_groups
from attribution_oracle.factory.artefacts import (
    build_gradient_index,
    build_lexical_index,
    build_span_index,
    span_min_len,
    store_checkpoints,
    store_directory,
)
from attribution_oracle.factory.chunking import CHUNKING, Chunk, split_eval, tokenize_documents
from attribution_oracle.factory.config import TrainConfig
from attribution_oracle.factory.evaluation import held_out_losses
from attribution_oracle.factory.factory_errors import FactoryError
from attribution_oracle.factory.fetch import TrainingData, fetch_training_data
from attribution_oracle.factory.index_shards import IndexShardGroup
from attribution_oracle.factory.manifest import MANIFEST_FORMAT, canonical_json, library_versions, store_manifest
from attribution_oracle.factory.peft_lora import adapter_state, attach_lora
from attribution_oracle.factory.run_state import bind_run_dir, load_state
from attribution_oracle.factory.trainer import Progress, _pad_id, train_loop
from attribution_oracle.factory.version_sources import DatanetSource
from attribution_oracle.models import ADAPTER_FORMAT, BaseModel, load_base_model, pack_adapter
from attribution_oracle.store.blobs import BlobStore

__all__ = ["TrainedModel", "run_name", "train_model", "tokenizer_description"]


@dataclass
class TrainedModel:
    """The outcome of ``train_model``."""

    manifest: dict
    manifest_digest: str
    adapter_digest: str
    base_sha256: str
    sources: list[tuple[int, int]]
    train_seconds: float
    index_seconds: float
    train_tokens: int
    resumed_from: int

    @property
    def index_overhead_pct(self) -> float:
        """Attribution-artefact time as a percentage of training time."""
        return 100.0 * self.index_seconds / self.train_seconds if self.train_seconds else 0.0


def tokenizer_description(tokenizer) -> dict:
    """Class, vocabulary, special ids and a hash of the tokenizer's serialisation."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    serial = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return {
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "add_special_tokens": False,
        "sha256": hashlib.sha256(serial.encode()).hexdigest(),
    }


def run_name(data: TrainingData, base_spec: str, config: TrainConfig) -> str:
    """A stable name for a run: the same data, base and settings always give the same run directory."""
    key = {
        "base": base_spec,
        "versions": [(v.datanet_id, v.version, v.merkle_root) for v in data.versions],
        "config": config.to_dict(),
    }
    return hashlib.sha256(canonical_json({"run": key})).hexdigest()[:20]


def _contributions(data: TrainingData, train: Sequence[Chunk], all_chunks: Sequence[Chunk]) -> list[dict]:
    rows = []
    for doc in data.documents:
        mine = [c for c in all_chunks if c.contribution == doc.key]
        trained = [c for c in train if c.contribution == doc.key]
        rows.append(
            {
                "datanet_id": doc.contribution.datanet_id,
                "contribution_id": doc.contribution.contribution_id,
                "contributor": doc.contribution.contributor,
                "sha256": doc.contribution.content_hash,
                "bytes": len(doc.data),
                "chunks": len(mine),
                "train_chunks": len(trained),
                "train_tokens": sum(len(c.tokens) for c in trained),
            }
        )
    return rows


def train_model(
    source: DatanetSource,
    store: BlobStore,
    specs: Sequence[str],
    *,
    base_spec: str,
    config: TrainConfig,
    run_dir: Path | None = None,
    runs_root: Path | None = None,
    progress: Progress | None = None,
    base: BaseModel | None = None,
    phase: Callable[[str], None] | None = None,
    nproc: int = 1,
) -> TrainedModel:
    """Verify the data, train (resuming when ``run_dir`` holds a checkpoint), store the adapter, the artefacts and
    the manifest. Give ``run_dir``, or ``runs_root`` to use ``runs_root / run_name(...)``; ``phase`` hears what
    is being done. ``nproc > 1`` shards the index build's gradient pass over that many processes
    (``factory.index_shards``; the same bytes as one process)."""
    say = phase or (lambda _: None)
    say("verifying the datanet versions against their on-chain roots")
    data = fetch_training_data(source, store, specs)
    say(f"loading base model {base_spec}")
    base = base or load_base_model(base_spec)
    chunks = tokenize_documents(data.documents, base.tokenizer, config.seq_len)
    train, held_out = split_eval(chunks, config.eval_fraction, config.seed)
    if not train:
        raise FactoryError("the datanet versions hold no text to train on")
    if run_dir is None:
        if runs_root is None:
            raise ValueError("give run_dir or runs_root")
        run_dir = runs_root / run_name(data, base.spec, config)
    versions = [[v.datanet_id, v.version, v.merkle_root] for v in data.versions]
    bind_run_dir(run_dir, {"base": base.spec, "base_sha256": base.sha256, "versions": versions, **config.to_dict()})

    with ExitStack() as stack:
        shards = None
        if nproc > 1:  # helpers load the model while this process trains (factory.index_shards)
            group = IndexShardGroup(nproc, base_spec=base.spec, lora_config=config.lora_config(), seed=config.seed)
            shards = stack.enter_context(group)
        lora_config = config.lora_config()
        model = attach_lora(base.model, lora_config, config.seed)
        say(f"training in {run_dir}")
        outcome = train_loop(model, base.tokenizer, train, config, run_dir, progress)
        adapter_digest = store.put_bytes(pack_adapter(adapter_state(model), lora_config, base.sha256))
        metrics_eval, metrics_base = held_out_losses(model, base.tokenizer, held_out, config.seq_len, config.batch_size)

        say("building the attribution artefacts")
        started = time.perf_counter()
        checkpoints = store_checkpoints(model, outcome.snapshots, lora_config, base.sha256, store)
        with tempfile.TemporaryDirectory(dir=run_dir, prefix="artefacts-") as tmp:
            final_state = load_state(run_dir)
            settings = build_gradient_index(
                model,
                outcome.snapshots,
                train,
                _pad_id(base.tokenizer),
                config,
                Path(tmp) / "gradient",
                adapter_digest,
                final_state.optimizer if final_state is not None else None,
                outcome.captured,
                shards,
            )
            gradient = {"format": "attribution-oracle/index@1", "files": store_directory(store, Path(tmp) / "gradient")}
            gradient.update(settings)
            min_len = span_min_len(chunks, config.span_min_len, sum(len(doc.data) for doc in data.documents))
            span = build_span_index(train, len(base.tokenizer), Path(tmp) / "span", min_len)
            span["files"] = store_directory(store, Path(tmp) / "span")
            texts = [(doc.key, doc.data.decode("utf-8", errors="replace")) for doc in data.documents]
            trained_keys = {c.contribution for c in train}
            lexical = build_lexical_index([t for t in texts if t[0] in trained_keys], Path(tmp) / "lexical")
            lexical["files"] = store_directory(store, Path(tmp) / "lexical")
            copies = copy_groups(texts)
        index_seconds = time.perf_counter() - started

    manifest = {
        "format": MANIFEST_FORMAT,
        "base_model": base.describe(),
        "tokenizer": tokenizer_description(base.tokenizer),
        "datanets": [
            {
                "datanet_id": v.datanet_id,
                "version": v.version,
                "merkle_root": v.merkle_root,
                "count": v.count,
                "manifest_uri": v.manifest_uri,
            }
            for v in data.versions
        ],
        "contributions": _contributions(data, train, chunks),
        "chunking": {
            "rule": CHUNKING,
            "seq_len": config.seq_len,
            "eval_fraction": config.eval_fraction,
            "eval_split": "chunks with the smallest sha256(f'{seed}:{key}') held out",
            "train_chunks": len(train),
            "eval_chunks": [c.key for c in held_out],
        },
        "hyperparameters": config.to_dict(),
        "lora_config": lora_config,
        "seeds": {
            "seed": config.seed,
            "lora_init": config.seed,
            "data_order": f"sha256('data-order:{config.seed}:<epoch>')",
            "eval_split": config.seed,
            "projection": config.seed,
        },
        "libraries": library_versions(),
        "checkpoints": checkpoints,
        "metrics": {
            "train_loss_first": outcome.losses[0],
            "train_loss_last": outcome.losses[-1],
            "train_losses": outcome.losses,
            "eval": metrics_eval,
            "eval_base": metrics_base,
        },
        "adapter": {"sha256": adapter_digest, "format": ADAPTER_FORMAT},
        "attribution": {"gradient_index": gradient, "span_index": span, "lexical_index": lexical},
        "copies": {"rule": COPIES_RULE, "groups": copies},
        "combine": FACTORY_RULE.to_dict(),
    }
    digest = store_manifest(store, manifest)
    return TrainedModel(
        manifest=manifest,
        manifest_digest=digest,
        adapter_digest=adapter_digest,
        base_sha256=base.sha256,
        sources=[(v.datanet_id, v.version) for v in data.versions],
        train_seconds=outcome.seconds,
        index_seconds=index_seconds,
        train_tokens=outcome.tokens,
        resumed_from=outcome.resumed_from,
    )
