"""`model register|list|show`: model records in ModelRegistry."""

from __future__ import annotations

import re
from pathlib import Path

import click

from attribution_oracle.chain.client import format_eth
from attribution_oracle.chain.token import events_of
from attribution_oracle.cli.app import App, as_dict, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.errors import UserError
from attribution_oracle.store.digests import digest_to_bytes32

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _hash_arg(app: App, path: Path | None, digest: str | None, what: str) -> str:
    if (path is None) == (digest is None):
        raise UserError(f"give exactly one of --{what} FILE or --{what}-hash HEX")
    if path is not None:
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        return app.store.put_file(path)
    if not _HEX64.match(digest):
        raise UserError(f"--{what}-hash must be 64 hex characters (a sha256)")
    return digest.lower().removeprefix("0x")


def _sources(app: App, specs: tuple[str, ...]) -> list[tuple[int, int]]:
    registry = app.contract("DatanetRegistry")
    sources = []
    for spec in specs:
        match = re.fullmatch(r"(\d+)(?:@(\d+))?", spec)
        if not match:
            raise UserError(f"--datanet {spec!r}: use ID or ID@VERSION")
        datanet_id = int(match.group(1))
        datanet = app.client.call(registry.functions.getDatanet(datanet_id))
        version = int(match.group(2)) if match.group(2) else datanet[6]
        if not app.client.call(registry.functions.versionExists(datanet_id, version)):
            raise UserError(f"datanet {datanet_id} has no published version {version or '(none published)'}")
        sources.append((datanet_id, version))
    return sources


def _split(text: str) -> tuple[int, int, int]:
    parts = text.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or sum(map(int, parts)) != 10_000:
        raise UserError("--split must be OWNER/CONTRIBUTORS/DATANET_OWNERS basis points summing to 10000")
    return int(parts[0]), int(parts[1]), int(parts[2])


@click.group("model")
def command() -> None:
    """Models: LoRA adapters registered with the data they were trained on."""


@command.command("register")
@click.option("--adapter", type=click.Path(path_type=Path), default=None, help="Adapter file (stored and hashed).")
@click.option("--adapter-hash", default=None, help="sha256 of an adapter already stored.")
@click.option("--base", type=click.Path(path_type=Path), default=None, help="Base model file (hashed).")
@click.option("--base-hash", default=None, help="sha256 of the base model.")
@click.option("--datanet", "datanets", multiple=True, required=True, help="ID or ID@VERSION (default latest).")
@click.option("--price", required=True, help="OPEN per inference.")
@click.option("--split", "split_text", default="5000/4000/1000", show_default=True, help="Owner/contributors/datanets.")
@click.option("--metadata-uri", default="", help="Where the model's manifest lives.")
@from_option
@password_option
@pass_app
def register(
    app: App,
    adapter: Path | None,
    adapter_hash: str | None,
    base: Path | None,
    base_hash: str | None,
    datanets: tuple[str, ...],
    price: str,
    split_text: str,
    metadata_uri: str,
    sender: str,
    password_file: Path | None,
) -> None:
    """Register a model trained on published Datanet versions."""
    split = _split(split_text)
    price_wei = parse_amount(price, "price")
    adapter_digest = _hash_arg(app, adapter, adapter_hash, "adapter")
    base_digest = _hash_arg(app, base, base_hash, "base")
    sources = _sources(app, datanets)
    signer = app.signer(sender, password_file)
    registry = app.contract("ModelRegistry")
    fn = registry.functions.register(
        digest_to_bytes32(base_digest),
        digest_to_bytes32(adapter_digest),
        [{"datanetId": d, "version": v} for d, v in sources],
        price_wei,
        {"ownerBps": split[0], "contributorsBps": split[1], "datanetOwnersBps": split[2]},
        metadata_uri,
    )
    receipt = app.client.send(fn, signer, "register model")
    model_id = events_of(registry, "ModelRegistered", receipt)[0]["modelId"]
    app.sync()
    trained_on = ", ".join(f"{d}@{v}" for d, v in sources)
    app.result(
        {"modelId": model_id, "adapterHash": adapter_digest},
        f"registered model {model_id}: adapter {adapter_digest[:16]}, trained on datanet {trained_on}, "
        f"{format_eth(price_wei)} OPEN per inference",
    )


def _model_row(m: dict) -> list:
    split = f"{m['owner_bps']}/{m['contributors_bps']}/{m['datanet_owners_bps']}"
    sources = ", ".join(f"{s['datanet_id']}@{s['version']}" for s in m.get("sources", []))
    return [m["id"], m["owner"], format_eth(int(m["price"])), split, sources, "yes" if m["active"] else "no"]


@command.command("list")
@pass_app
def list_(app: App) -> None:
    """List registered models."""
    app.sync()
    models = [as_dict(m) for m in app.catalog.list_models()]
    app.emit(
        models,
        table(
            "models", ["id", "owner", "price (OPEN)", "split", "datanets", "active"], [_model_row(m) for m in models]
        ),
    )


@command.command("show")
@click.argument("model_id", type=int)
@pass_app
def show(app: App, model_id: int) -> None:
    """Show one model record."""
    app.sync()
    m = as_dict(app.catalog.get_model(model_id))
    rows = [[k, v] for k, v in m.items()]
    app.emit(m, table(f"model {model_id}", ["field", "value"], rows))
