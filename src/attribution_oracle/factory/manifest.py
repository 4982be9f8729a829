"""The provenance manifest of a trained model: canonical JSON, stored content-addressed.

A model's on-chain ``metadataURI`` is ``sha256://<manifest digest>``. Schema (``MANIFEST_FORMAT``)::

    format            "attribution-oracle/model-manifest@1"
    base_model        {spec, name, sha256, config, tokenizer}            (models.BaseModel.describe())
    tokenizer         {class, vocab_size, eos_token_id, pad_token_id, add_special_tokens, sha256}
    datanets          [{datanet_id, version, merkle_root, count, manifest_uri}]      as trained, in order
    contributions     [{datanet_id, contribution_id, contributor, sha256, bytes, chunks, train_chunks,
                        train_tokens}]   every contribution of those versions, training order
    chunking          {rule, seq_len, eval_fraction, eval_split, train_chunks, eval_chunks: [keys], packed_rows}
    hyperparameters   TrainConfig.to_dict()
    lora_config       {r, lora_alpha, target_modules, lora_dropout, bias}
    seeds             {seed, lora_init, data_order, eval_split, projection}
    libraries         {python, torch, transformers, peft, safetensors, attribution-oracle}
    checkpoints       [{step, adapter_sha256}]     the adapter kept at these steps (attribution ensemble)
    metrics           {train_loss_first, train_loss_last, train_tokens, eval: {loss, perplexity, tokens, chunks},
                      eval_base: the same for the base model (adapter off) on the same held-out chunks}
    adapter           {sha256, format}            sha256 = on-chain adapterHash
    attribution       {gradient_index: {format, files: {name: sha256}, estimator (TrainConfig.gradient_estimator:
                                        graddot or influence), task, proj_dim, seed, damping (influence only),
                                        batch_size, checkpoint_steps, rows, preconditioner, normalize},
                       span_index: {format, files: {name: sha256}, vocab_size, documents, query, split, min_len},
                       lexical_index: {format, files: {name: sha256}, documents, query, k1, b}}
    copies            {rule, groups: {copy contribution id: original id}}   (attribution.duplicates; folded on
                      every signal by the scorer)
    combine           the gradient/span/lexical combine rule: attribution.combine.CombineRule.to_dict()
                      ({format: "attribution-oracle/combine@1", gradient_weight, span_weight, lexical_weight, power,
                      and gradient_power when the gradient side has its own power})

The manifest holds no timings or paths, so the same inputs give the same manifest bytes.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version

from attribution_oracle.factory.factory_errors import ManifestError
from attribution_oracle.models import unpack_adapter
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import CONTENT_URI_SCHEME, content_uri
from attribution_oracle.store.merkle import MerkleTree
from attribution_oracle.store.store_errors import StoreError

__all__ = [
    "MANIFEST_FORMAT",
    "canonical_json",
    "library_versions",
    "load_manifest",
    "manifest_digest_of_uri",
    "manifest_uri",
    "store_manifest",
    "verify_manifest",
]

MANIFEST_FORMAT = "attribution-oracle/model-manifest@1"
_REQUIRED = (
    "format", "base_model", "tokenizer", "datanets", "contributions", "chunking", "hyperparameters", "lora_config",
    "seeds", "libraries", "checkpoints", "metrics", "adapter", "attribution", "combine",
)  # fmt: skip


def canonical_json(data: dict) -> bytes:
    """Sorted keys, no whitespace, ASCII, no NaN: the bytes that are hashed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run."""
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "safetensors", "attribution-oracle"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def manifest_uri(digest: str) -> str:
    """``sha256://<digest>``: the metadataURI registered on-chain."""
    return content_uri(digest)


def manifest_digest_of_uri(uri: str) -> str:
    """The digest inside a ``sha256://`` metadataURI (``ManifestError`` for anything else)."""
    if not uri.startswith(CONTENT_URI_SCHEME):
        raise ManifestError(f"metadataURI {uri!r} does not point at a model manifest (want sha256://<digest>)")
    return uri.removeprefix(CONTENT_URI_SCHEME).lower()


def store_manifest(store: BlobStore, manifest: dict) -> str:
    """Store the manifest as canonical JSON; returns its digest."""
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing or manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"incomplete model manifest (missing {', '.join(missing) or 'format'})")
    return store.put_bytes(canonical_json(manifest))


def load_manifest(store: BlobStore, digest: str) -> dict:
    """Read and check a manifest (bytes verified against ``digest``)."""
    try:
        data = json.loads(store.get(digest))
    except StoreError as exc:
        raise ManifestError(f"model manifest: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ManifestError(f"blob {digest[:16]}... is not a model manifest (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"blob {digest[:16]}... is not a {MANIFEST_FORMAT} manifest")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ManifestError(f"model manifest {digest[:16]}... lacks {', '.join(missing)}")
    return data


def _check(store: BlobStore, digest: str, what: str) -> None:
    try:
        store.verify(digest)
    except StoreError as exc:
        raise ManifestError(f"{what}: {exc}") from None


def verify_manifest(store: BlobStore, digest: str) -> list[str]:
    """Verify every hash a manifest names; returns what was checked (one line each), raises ``ManifestError``.

    Checks: the manifest bytes; the adapter blob and that it was trained on the manifest's base hash; every
    checkpoint blob; every contribution blob; each Datanet version's Merkle root recomputed from the
    manifest's contributions; every attribution artefact file.
    """
    manifest = load_manifest(store, digest)
    checked = [f"manifest {digest}"]
    adapter = manifest["adapter"]["sha256"]
    _check(store, adapter, "adapter")
    blob = unpack_adapter(store.get(adapter))
    if blob.base_model_hash != manifest["base_model"]["sha256"]:
        raise ManifestError("the adapter blob names another base model than the manifest")
    checked.append(f"adapter {adapter}")
    for checkpoint in manifest["checkpoints"]:
        _check(store, checkpoint["adapter_sha256"], f"checkpoint at step {checkpoint['step']}")
        checked.append(f"checkpoint {checkpoint['adapter_sha256']} (step {checkpoint['step']})")
    for contribution in manifest["contributions"]:
        _check(store, contribution["sha256"], f"contribution {contribution['contribution_id']}")
    checked.append(f"{len(manifest['contributions'])} contribution blobs")
    for v in manifest["datanets"]:
        hashes = [c["sha256"] for c in manifest["contributions"] if c["datanet_id"] == v["datanet_id"]][: v["count"]]
        if len(hashes) != v["count"] or MerkleTree([bytes.fromhex(h) for h in hashes]).root.hex() != v["merkle_root"]:
            raise ManifestError(f"datanet {v['datanet_id']}@{v['version']}: contributions do not give its Merkle root")
        checked.append(f"datanet {v['datanet_id']}@{v['version']} root {v['merkle_root']}")
    for kind, part in manifest["attribution"].items():
        if part is None:
            continue
        for name, file_digest in part["files"].items():
            _check(store, file_digest, f"{kind} file {name}")
        checked.append(f"{kind}: {len(part['files'])} files")
    return checked
