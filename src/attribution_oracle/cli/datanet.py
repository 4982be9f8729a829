"""`datanet create|contribute|list|show|approve|reject|withdraw|curator|publish`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from attribution_oracle.chain.client import format_eth
from attribution_oracle.chain.errors import TransactionError
from attribution_oracle.chain.token import ensure_allowance, events_of
from attribution_oracle.cli.app import App, as_dict, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.errors import UserError
from attribution_oracle.store.digests import digest_to_bytes32
from attribution_oracle.store.merkle import MerkleTree

GAS_PER_CONTRIBUTION = 300_000
PAGE = 100


def blob_uri(digest: str) -> str:
    """The URI recorded on-chain for a blob held in a content store."""
    return f"sha256://{digest}"


def _files(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    if not files:
        raise UserError("nothing to contribute: the folders hold no files")
    return files


@click.group("datanet")
def command() -> None:
    """Datanets: curated, content-addressed training data."""


@command.command("create")
@click.argument("name")
@click.option("--metadata-uri", default="", help="Where the Datanet's description lives.")
@click.option("--min-stake", default="0", show_default=True, help="OPEN each contribution must escrow.")
@from_option
@password_option
@pass_app
def create(app: App, name: str, metadata_uri: str, min_stake: str, sender: str, password_file: Path | None) -> None:
    """Create a Datanet owned by the sender (pays the creation fee in OPEN)."""
    signer = app.signer(sender, password_file)
    registry, token = app.contract("DatanetRegistry"), app.contract("OpenToken")
    fee = app.client.call(registry.functions.creationFee())
    ensure_allowance(app.client, token, signer, registry.address, fee)
    receipt = app.client.send(
        registry.functions.createDatanet(name, metadata_uri, parse_amount(min_stake, "min stake")),
        signer,
        f"create datanet {name!r}",
    )
    datanet_id = events_of(registry, "DatanetCreated", receipt)[0]["datanetId"]
    app.sync()
    app.result(
        {"datanetId": datanet_id, "fee": str(fee)},
        f"created datanet {datanet_id} {name!r} (fee {format_eth(fee)} OPEN)",
    )


@command.command("contribute")
@click.argument("datanet_id", type=int)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--stake", default=None, help="OPEN to escrow per contribution (default: the Datanet's minimum).")
@from_option
@password_option
@pass_app
def contribute(
    app: App, datanet_id: int, paths: tuple[Path, ...], stake: str | None, sender: str, password_file: Path | None
) -> None:
    """Store files (or every file under folders) and contribute each to a Datanet.

    Everything is checked before the first transaction: the Datanet, the stake, duplicates and the
    sender's OPEN and ETH. Files this sender already contributed are skipped, so a rerun resumes.
    """
    files = _files(paths)
    signer = app.signer(sender, password_file)
    registry, token = app.contract("DatanetRegistry"), app.contract("OpenToken")
    datanet = app.client.call(registry.functions.getDatanet(datanet_id))
    min_stake = datanet[3]
    stake_wei = min_stake if stake is None else parse_amount(stake, "stake")
    if stake_wei < min_stake:
        raise UserError(f"datanet {datanet_id} requires a stake of at least {format_eth(min_stake)} OPEN")

    todo: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    skipped = 0
    for path in files:
        digest = app.store.put_file(path)
        if digest in seen:
            raise UserError(f"{path} has the same content as {seen[digest]}")
        seen[digest] = path
        existing = app.client.call(registry.functions.contributionIdOf(datanet_id, digest_to_bytes32(digest)))
        if existing:
            owner = app.client.call(registry.functions.getContribution(existing))[2]
            if owner != signer.address:
                raise UserError(f"{path} duplicates contribution {existing} already in datanet {datanet_id}")
            skipped += 1
            continue
        todo.append((path, digest))

    if todo:
        fee = app.client.w3.eth.gas_price
        needed = len(todo) * GAS_PER_CONTRIBUTION * fee
        have = app.client.eth_balance(signer.address)
        if have < needed:
            raise TransactionError(
                f"{sender} has {format_eth(have)} ETH; {len(todo)} contributions need about {format_eth(needed)} ETH"
            )
        ensure_allowance(app.client, token, signer, registry.address, stake_wei * len(todo))

    ids = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=app.console, disable=app.json_output or not todo) as progress:
        task = progress.add_task(f"contributing to datanet {datanet_id}", total=len(todo))
        for path, digest in todo:
            size = path.stat().st_size
            fn = registry.functions.contribute(datanet_id, digest_to_bytes32(digest), blob_uri(digest), size, stake_wei)
            receipt = app.client.send(fn, signer, f"contribute {path.name}")
            ids.append(events_of(registry, "ContributionSubmitted", receipt)[0]["contributionId"])
            progress.advance(task)
    app.sync()
    for path, digest in todo:
        app.catalog.record_local_file(digest, str(path.resolve()), path.name)
    rows = [[cid, path.name, digest[:16]] for cid, (path, digest) in zip(ids, todo, strict=True)]
    app.emit(
        {"contributionIds": ids, "skipped": skipped},
        table(
            f"{len(ids)} contributed to datanet {datanet_id}, {skipped} already there",
            ["id", "file", "sha256"],
            rows,
        ),
    )


def _curate(app: App, signer, contribution_id: int, fn, what: str) -> None:
    app.client.send(fn, signer, f"{what} contribution {contribution_id}")


@command.command("approve")
@click.argument("contribution_ids", nargs=-1, type=int, required=True)
@from_option
@password_option
@pass_app
def approve(app: App, contribution_ids: tuple[int, ...], sender: str, password_file: Path | None) -> None:
    """Approve pending contributions (Datanet owner or curator); their stakes go back."""
    signer = app.signer(sender, password_file)
    registry = app.contract("DatanetRegistry")
    for cid in contribution_ids:
        app.client.send(registry.functions.approve(cid), signer, f"approve contribution {cid}")
    app.sync()
    app.result({"approved": list(contribution_ids)}, f"approved {', '.join(map(str, contribution_ids))}")


@command.command("reject")
@click.argument("contribution_ids", nargs=-1, type=int, required=True)
@click.option("--malicious", is_flag=True, help="Slash the stake to the treasury and block the content.")
@from_option
@password_option
@pass_app
def reject(
    app: App, contribution_ids: tuple[int, ...], malicious: bool, sender: str, password_file: Path | None
) -> None:
    """Reject pending contributions; stakes go back unless --malicious (slashed)."""
    signer = app.signer(sender, password_file)
    registry = app.contract("DatanetRegistry")
    for cid in contribution_ids:
        app.client.send(registry.functions.reject(cid, malicious), signer, f"reject contribution {cid}")
    app.sync()
    verb = "rejected as malicious (stake slashed)" if malicious else "rejected"
    app.result(
        {"rejected": list(contribution_ids), "malicious": malicious}, f"{verb}: {', '.join(map(str, contribution_ids))}"
    )


@command.command("withdraw")
@click.argument("contribution_id", type=int)
@from_option
@password_option
@pass_app
def withdraw(app: App, contribution_id: int, sender: str, password_file: Path | None) -> None:
    """Withdraw your own pending contribution; its stake comes back."""
    signer = app.signer(sender, password_file)
    registry = app.contract("DatanetRegistry")
    app.client.send(registry.functions.withdraw(contribution_id), signer, f"withdraw contribution {contribution_id}")
    app.sync()
    app.result({"withdrawn": contribution_id}, f"withdrew {contribution_id}")


@command.command("curator")
@click.argument("datanet_id", type=int)
@click.argument("account")
@click.option("--remove", is_flag=True, help="Remove instead of appoint.")
@from_option
@password_option
@pass_app
def curator(app: App, datanet_id: int, account: str, remove: bool, sender: str, password_file: Path | None) -> None:
    """Appoint (or --remove) a curator of a Datanet (Datanet owner only)."""
    signer = app.signer(sender, password_file)
    registry = app.contract("DatanetRegistry")
    address = app.address(account)
    app.client.send(registry.functions.setCurator(datanet_id, address, not remove), signer, "set curator")
    app.sync()
    app.result(
        {"datanetId": datanet_id, "curator": address, "enabled": not remove},
        f"{'removed' if remove else 'appointed'} curator {address} of datanet {datanet_id}",
    )


def approved_hashes_onchain(app: App, datanet_id: int) -> list[bytes]:
    """Read a Datanet's approved content hashes (approval order) from the chain, page by page."""
    registry = app.contract("DatanetRegistry")
    hashes: list[bytes] = []
    while True:
        page = app.client.call(registry.functions.getApprovedHashes(datanet_id, len(hashes), PAGE))
        hashes += [bytes(h) for h in page]
        if len(page) < PAGE:
            return hashes


@command.command("publish")
@click.argument("datanet_id", type=int)
@from_option
@password_option
@pass_app
def publish(app: App, datanet_id: int, sender: str, password_file: Path | None) -> None:
    """Publish a new version: the Merkle root of every approved contribution, in approval order.

    The version manifest (root, count, hashes in order) is stored in the content store and its
    address recorded on-chain.
    """
    signer = app.signer(sender, password_file)
    registry = app.contract("DatanetRegistry")
    owner = app.client.call(registry.functions.getDatanet(datanet_id))[0]
    if owner != signer.address:
        raise UserError(f"{sender} is not the datanet owner of datanet {datanet_id} (the owner is {owner})")
    hashes = approved_hashes_onchain(app, datanet_id)
    if not hashes:
        raise UserError(f"datanet {datanet_id} has no approved contributions to publish")
    tree = MerkleTree(hashes)
    manifest = {
        "format": "attribution-oracle/datanet-version@1",
        "chainId": app.client.chain_id,
        "registry": registry.address,
        "datanetId": datanet_id,
        "merkleRoot": tree.root.hex(),
        "count": len(hashes),
        "leafRule": "keccak256(keccak256(contentHash)), sorted pairs",
        "contentHashes": [h.hex() for h in hashes],
    }
    digest = app.store.put_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode())
    fn = registry.functions.publishVersion(datanet_id, tree.root, len(hashes), blob_uri(digest))
    receipt = app.client.send(fn, signer, f"publish datanet {datanet_id}")
    version = events_of(registry, "VersionPublished", receipt)[0]["version"]
    app.sync()
    data = {"datanetId": datanet_id, "version": version, "merkleRoot": "0x" + tree.root.hex(), "count": len(hashes)}
    app.result(
        data, f"published datanet {datanet_id} version {version}: {len(hashes)} contributions, root 0x{tree.root.hex()}"
    )


@command.command("list")
@pass_app
def list_(app: App) -> None:
    """List Datanets."""
    app.sync()
    datanets = app.catalog.list_datanets()
    rows = [_datanet_row(d) for d in datanets]
    app.emit(
        [as_dict(d) for d in datanets],
        table("datanets", ["id", "name", "owner", "min stake", "contributions", "approved", "versions"], rows),
    )


@command.command("show")
@click.argument("datanet_id", type=int)
@pass_app
def show(app: App, datanet_id: int) -> None:
    """Show a Datanet, its contributions with status, and its versions."""
    app.sync()
    d = app.catalog.get_datanet(datanet_id)
    contributions = app.catalog.list_contributions(datanet_id)
    versions = app.catalog.list_versions(datanet_id)
    if app.json_output:
        app.emit(
            {
                "datanet": as_dict(d),
                "contributions": [as_dict(c) for c in contributions],
                "versions": [as_dict(v) for v in versions],
            }
        )
        return
    app.console.print(
        table(
            f"datanet {datanet_id}",
            ["id", "name", "owner", "min stake", "contributions", "approved", "versions"],
            [_datanet_row(d)],
        )
    )
    rows = []
    for c in contributions:
        local = app.catalog.local_file(_get(c, "content_hash"))
        rows.append(
            [
                _get(c, "id"),
                _get(c, "contributor"),
                _get(c, "status"),
                _stake_outcome(c),
                _get(c, "content_hash")[:16],
                _get(local, "name") if local else "",
            ]
        )
    app.console.print(table("contributions", ["id", "contributor", "status", "stake", "sha256", "file"], rows))
    app.console.print(
        table(
            "versions",
            ["version", "count", "merkle root", "manifest"],
            [
                [
                    _get(v, "version"),
                    _get(v, "count"),
                    "0x" + _hex(_get(v, "merkle_root"))[:16],
                    _get(v, "manifest_uri"),
                ]
                for v in versions
            ],
        )
    )


def _stake_outcome(c) -> str:
    stake = format_eth(int(_get(c, "stake")))
    outcome = {"pending": "escrowed", "slashed": "slashed"}.get(_get(c, "status"), "returned")
    return f"{stake} {outcome}"


def _get(obj, key: str):
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def _hex(value) -> str:
    return value.hex() if isinstance(value, bytes) else str(value).removeprefix("0x")


def _datanet_row(d) -> list:
    return [
        _get(d, "id"),
        _get(d, "name"),
        _get(d, "owner"),
        format_eth(int(_get(d, "min_stake"))),
        _get(d, "contribution_count"),
        _get(d, "approved_count"),
        _get(d, "version_count"),
    ]
