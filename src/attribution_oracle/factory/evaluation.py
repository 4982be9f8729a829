"""Held-out loss: the tuned model's beside the base model's at training time, and recomputed from a manifest.

The held-out chunks are the ``eval_fraction`` of the training chunks (chosen by the seed) that training never
sees; the manifest names them (``chunking.eval_chunks``) so anyone can rebuild and re-score them.
"""

from __future__ import annotations

from attribution_oracle.factory.chunking import tokenize_documents
from attribution_oracle.factory.factory_errors import ManifestError
from attribution_oracle.factory.fetch import Document
from attribution_oracle.factory.manifest import load_manifest
from attribution_oracle.factory.peft_lora import attach_lora, load_adapter_state
from attribution_oracle.factory.trainer import evaluate
from attribution_oracle.factory.version_sources import ApprovedContribution
from attribution_oracle.models import load_base_model, unpack_adapter
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.store_errors import StoreError

__all__ = ["evaluate_manifest", "held_out_losses"]


def held_out_losses(model, tokenizer, held_out: list, seq_len: int, batch_size: int) -> tuple[dict, dict]:
    """``(tuned, base)`` held-out metrics of a LoRA-wrapped ``model``: the base is the same model, adapter off.

    Each is ``{"loss", "perplexity", "tokens", "chunks"}`` (``loss`` None without held-out chunks), so a reader
    sees what the fine-tuning bought on text it did not train on.
    """
    tuned = evaluate(model, tokenizer, held_out, seq_len, batch_size)
    with model.disable_adapter():
        base = evaluate(model, tokenizer, held_out, seq_len, batch_size)
    return tuned, base


def evaluate_manifest(store: BlobStore, digest: str) -> dict:
    """``{"recorded", "recomputed", "match", "recorded_base", "base"}`` for the model of manifest ``digest``.

    ``base`` is the base model's held-out metrics (adapter off) recomputed here; ``recorded_base`` the manifest's.

    The held-out chunks are rebuilt with the manifest's chunking and the keys it lists; the contribution
    blobs and the adapter are read (and verified) from the store, the base model is loaded and its hash checked.
    """
    manifest = load_manifest(store, digest)
    base = load_base_model(manifest["base_model"]["spec"])
    if base.sha256 != manifest["base_model"]["sha256"]:
        raise ManifestError(f"base model {base.spec!r} here does not have the manifest's sha256")
    documents = []
    try:
        for c in manifest["contributions"]:
            contribution = ApprovedContribution(c["datanet_id"], c["contribution_id"], c["contributor"], c["sha256"])
            documents.append(Document(contribution, store.get(c["sha256"])))
        adapter = unpack_adapter(store.get(manifest["adapter"]["sha256"]))
    except StoreError as exc:
        raise ManifestError(f"cannot evaluate: {exc}") from None
    seq_len = manifest["chunking"]["seq_len"]
    wanted = set(manifest["chunking"]["eval_chunks"])
    held_out = [c for c in tokenize_documents(documents, base.tokenizer, seq_len) if c.key in wanted]
    if len(held_out) != len(wanted):
        raise ManifestError("the held-out chunks named in the manifest cannot be rebuilt from its contributions")
    model = attach_lora(base.model, adapter.lora_config, manifest["seeds"]["lora_init"])
    load_adapter_state(model, adapter.state_dict)
    recomputed, base_metrics = held_out_losses(
        model, base.tokenizer, held_out, seq_len, manifest["hyperparameters"]["batch_size"]
    )
    recorded = manifest["metrics"]["eval"]
    match = recorded["tokens"] == recomputed["tokens"] and (
        recorded["loss"] is None or abs(recorded["loss"] - recomputed["loss"]) <= 1e-4 * max(1.0, abs(recorded["loss"]))
    )
    return {
        "recorded": recorded,
        "recomputed": recomputed,
        "match": match,
        "recorded_base": manifest["metrics"].get("eval_base"),  # None in manifests from before it was recorded
        "base": base_metrics,
    }
