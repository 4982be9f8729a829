"""`datanet create|contribute|list|show|approve|reject|withdraw|curator|publish|audit`."""

from __future__ import annotations

from pathlib import Path

import click

from attribution_oracle.chain.open_token import ensure_allowance, events_of
from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, as_dict, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.cli.params import CHAIN_ID, POSITIVE, FiniteFloatType
from attribution_oracle.cli.progress import StepProgress
from attribution_oracle.datanets.contributing import (
    collect_files,
    fund_contributions,
    plan_contributions,
    send_contributions,
)
from attribution_oracle.datanets.copy_audit import audit_datanet
from attribution_oracle.datanets.curation import curate
from attribution_oracle.datanets.versions import build_version_manifest, encode_version_manifest
from attribution_oracle.errors import UserError
from attribution_oracle.store.digests import content_uri
from attribution_oracle.store.merkle import MerkleTree


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
    min_stake_wei = parse_amount(min_stake, "min stake")
    signer = app.signer(sender, password_file)
    registry, token = app.contract("DatanetRegistry"), app.contract("OpenToken")
    fee = app.client.call(registry.functions.creationFee())
    ensure_allowance(app.client, token, signer, registry.address, fee)
    receipt = app.client.send(
        registry.functions.createDatanet(name, metadata_uri, min_stake_wei),
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
@click.argument("datanet_id", type=CHAIN_ID)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--stake", default=None, help="OPEN to escrow per contribution (default: the Datanet's minimum).")
@from_option
@password_option
@pass_app
def contribute(
    app: App, datanet_id: int, paths: tuple[Path, ...], stake: str | None, sender: str, password_file: Path | None
) -> None:
    """Store files (or every file under folders) and contribute each to a Datanet.

    Contributions must be UTF-8 text: empty files and binary files (NUL bytes, not UTF-8) are refused.
    Everything is checked before the first transaction: the files, the Datanet, the stake, duplicates and
    the sender's OPEN and ETH. Files this sender already contributed are skipped, so a rerun resumes.
    """
    stake_given = None if stake is None else parse_amount(stake, "stake")
    files = collect_files(paths)
    signer = app.signer(sender, password_file)
    registry, token = app.contract("DatanetRegistry"), app.contract("OpenToken")
    plan = plan_contributions(app.reader, app.store, datanet_id, files, signer.address, stake_given)
    fund_contributions(app.client, registry, token, signer, plan)
    with StepProgress(app.console, enabled=not app.json_output and bool(plan.todo)) as progress:
        progress.start(f"contributing to datanet {datanet_id}", len(plan.todo))
        ids = send_contributions(app.client, registry, signer, plan, progress.advance)
    app.sync()
    for path, digest in plan.todo:
        app.catalog.record_local_file(digest, str(path.resolve()), path.name)
    rows = [[cid, path.name, digest[:16]] for cid, (path, digest) in zip(ids, plan.todo, strict=True)]
    app.emit(
        {"contributionIds": ids, "skipped": plan.skipped},
        table(
            f"{len(ids)} contributed to datanet {datanet_id}, {plan.skipped} already there",
            ["id", "file", "sha256"],
            rows,
        ),
    )


@command.command("approve")
@click.argument("contribution_ids", nargs=-1, type=CHAIN_ID, required=True)
@from_option
@password_option
@pass_app
def approve(app: App, contribution_ids: tuple[int, ...], sender: str, password_file: Path | None) -> None:
    """Approve pending contributions (Datanet owner or curator); their stakes go back.

    Every id is checked first: one that cannot be approved refuses the whole batch (nothing is sent).
    """
    signer = app.signer(sender, password_file)
    curate(app.client, app.contract("DatanetRegistry"), signer, "approve", contribution_ids)
    app.sync()
    app.result({"approved": list(contribution_ids)}, f"approved {', '.join(map(str, contribution_ids))}")


@command.command("reject")
@click.argument("contribution_ids", nargs=-1, type=CHAIN_ID, required=True)
@click.option("--malicious", is_flag=True, help="Slash the stake to the treasury and block the content.")
@from_option
@password_option
@pass_app
def reject(
    app: App, contribution_ids: tuple[int, ...], malicious: bool, sender: str, password_file: Path | None
) -> None:
    """Reject pending contributions; stakes go back unless --malicious (slashed).

    Every id is checked first: one that cannot be rejected refuses the whole batch (nothing is sent).
    """
    signer = app.signer(sender, password_file)
    curate(app.client, app.contract("DatanetRegistry"), signer, "reject", contribution_ids, malicious)
    app.sync()
    verb = "rejected as malicious (stake slashed)" if malicious else "rejected"
    app.result(
        {"rejected": list(contribution_ids), "malicious": malicious}, f"{verb}: {', '.join(map(str, contribution_ids))}"
    )


@command.command("withdraw")
@click.argument("contribution_id", type=CHAIN_ID)
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
@click.argument("datanet_id", type=CHAIN_ID)
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


@command.command("publish")
@click.argument("datanet_id", type=CHAIN_ID)
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
    owner = app.reader.datanet(datanet_id).owner
    if owner != signer.address:
        raise UserError(f"{sender} is not the datanet owner of datanet {datanet_id} (the owner is {owner})")
    hashes = app.reader.approved_hashes(datanet_id)
    if not hashes:
        raise UserError(f"datanet {datanet_id} has no approved contributions to publish")
    manifest = build_version_manifest(app.client.chain_id, registry.address, datanet_id, hashes)
    tree = MerkleTree(hashes)
    digest = app.store.put_bytes(encode_version_manifest(manifest))
    fn = registry.functions.publishVersion(datanet_id, tree.root, len(hashes), content_uri(digest))
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
    rows = [_datanet_row(d, app.names()) for d in datanets]
    app.emit(
        [as_dict(d) for d in datanets],
        table("datanets", ["id", "name", "owner", "min stake", "contributions", "approved", "versions"], rows),
    )


@command.command("show")
@click.argument("datanet_id", type=CHAIN_ID)
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
            [_datanet_row(d, app.names())],
        )
    )
    rows = []
    for c in contributions:
        local = app.catalog.local_file(_get(c, "content_hash"))
        rows.append(
            [
                _get(c, "id"),
                app.name_of(_get(c, "contributor")),
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


def _datanet_row(d, names: dict[str, str]) -> list:
    return [
        _get(d, "id"),
        _get(d, "name"),
        names.get(_get(d, "owner"), _get(d, "owner")),
        format_eth(int(_get(d, "min_stake"))),
        _get(d, "contribution_count"),
        _get(d, "approved_count"),
        _get(d, "version_count"),
    ]


@command.command("audit")
@click.argument("datanet_id", type=CHAIN_ID)
@click.option("--pending", is_flag=True, help="Audit pending contributions (the default).")
@click.option("--version", "version", type=CHAIN_ID, default=None, help="Audit a published version's contributions.")
@click.option(
    "--min-len", type=POSITIVE, default=32, show_default=True, help="Shortest copied passage counted (bytes)."
)
@click.option(
    "--threshold", type=FiniteFloatType(0, 1, low_open=True), default=0.5, show_default=True,
    help="Copied fraction that flags a near copy (0 < T <= 1).",
)  # fmt: skip
@pass_app
def audit(app: App, datanet_id: int, pending: bool, version: int | None, min_len: int, threshold: float) -> None:
    """List contributions that look like copies of earlier ones, for the curator.

    By default each pending contribution is compared with every approved one and with the pending ones sent
    before it; with --version V each contribution of version V is compared with those approved before it. A
    byte of a contribution counts as copied when a passage of at least --min-len bytes around it occurs
    verbatim in an earlier contribution; the verdict is "copy" from 95% copied, "near-copy" from --threshold.
    """
    if pending and version is not None:
        raise UserError("--pending and --version exclude each other")
    app.sync()
    with StepProgress(app.console, enabled=not app.json_output) as progress:
        result = audit_datanet(
            app.catalog, app.store, datanet_id, version, min_len, threshold,
            on_start=lambda n: progress.start(f"auditing {n} contributions", n) if n else None,
            on_progress=progress.advance,
        )  # fmt: skip
    names = app.names()
    rows = [
        [
            _get(c, "id"),
            names.get(_get(c, "contributor"), _get(c, "contributor")),
            r.total_tokens,
            f"{100 * r.coverage:.1f}%",
            r.longest_run,
            ", ".join(f"{sid} ({n})" for sid, n in r.sources[:3]),
            r.verdict,
        ]
        for c, r in result.reports
    ]
    what = f"version {version}" if version is not None else "pending contributions"
    against = f"{result.compared} approved" + (f" + {result.compared_pending} pending" if version is None else "")
    if result.missing and not app.json_output:
        app.say(f"not in the local store, skipped: {', '.join(map(str, result.missing))}")
    app.emit(
        result.to_dict(),
        table(
            f"datanet {datanet_id} audit of {what} against {against}",
            ["id", "contributor", "bytes", "copied", "longest", "sources", "verdict"],
            rows,
        ),
    )
