"""Registering a model in ModelRegistry: one code path for `model register` and `model train --register`."""

from __future__ import annotations

from collections.abc import Sequence

from attribution_oracle.chain.open_token import events_of
from attribution_oracle.datanets.specs import parse_spec
from attribution_oracle.errors import UserError
from attribution_oracle.store.digests import digest_to_bytes32

__all__ = ["parse_split", "register_model", "resolve_sources"]


def parse_split(text: str) -> tuple[int, int, int]:
    """``OWNER/CONTRIBUTORS/DATANET_OWNERS`` basis points summing to 10,000."""
    parts = text.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or sum(map(int, parts)) != 10_000:
        raise UserError("--split must be OWNER/CONTRIBUTORS/DATANET_OWNERS basis points summing to 10000")
    return int(parts[0]), int(parts[1]), int(parts[2])


def resolve_sources(client, deployment, specs: Sequence[str]) -> list[tuple[int, int]]:
    """``ID[@VERSION]`` specs as published ``(datanet id, version)`` pairs (default: the latest version)."""
    from attribution_oracle.chain.reads import ChainReader

    reader = ChainReader(client, deployment)
    sources = []
    for spec in specs:
        datanet_id, wanted = parse_spec(spec)
        if datanet_id > reader.datanet_count():
            raise UserError(f"unknown datanet {datanet_id}")
        version = wanted if wanted is not None else reader.datanet(datanet_id).version_count
        if not reader.version_exists(datanet_id, version):
            raise UserError(f"datanet {datanet_id} has no published version {version or '(none published)'}")
        sources.append((datanet_id, version))
    return sources


def register_model(
    client,
    deployment,
    signer,
    *,
    base_hash: str,
    adapter_hash: str,
    sources: Sequence[tuple[int, int]],
    price_wei: int,
    split: tuple[int, int, int],
    metadata_uri: str,
) -> int:
    """Send ``ModelRegistry.register`` and return the new model id."""
    registry = client.contract(deployment, "ModelRegistry")
    fn = registry.functions.register(
        digest_to_bytes32(base_hash),
        digest_to_bytes32(adapter_hash),
        [{"datanetId": d, "version": v} for d, v in sources],
        price_wei,
        {"ownerBps": split[0], "contributorsBps": split[1], "datanetOwnersBps": split[2]},
        metadata_uri,
    )
    receipt = client.send(fn, signer, "register model")
    return int(events_of(registry, "ModelRegistered", receipt)[0]["modelId"])
