"""`datanet create|contribute|list|show|approve|reject|withdraw|curator|publish|audit`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from attribution_oracle.chain.client import format_eth
from attribution_oracle.chain.commit_reveal import contribute_bound
from attribution_oracle.chain.errors import TransactionError
from attribution_oracle.chain.token import ensure_allowance, events_of
from attribution_oracle.cli.app import App, as_dict, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.errors import UserError
from attribution_oracle.store.digests import digest_to_bytes32
from attribution_oracle.store.merkle import MerkleTree

GAS_PER_CONTRIBUTION = 350_000  # commit + reveal
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
            receipt = contribute_bound(
                app.client,
                registry,
                signer,
                datanet_id,
                digest_to_bytes32(digest),
                blob_uri(digest),
                size,
                stake_wei,
                path.name,
            )  # commit-reveal: the content hash cannot be front-run
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


def _blob_text(app: App, digest: str) -> str | None:
    """A contribution's bytes as text (invalid UTF-8 replaced), or None if the blob is not in the local store."""
    from attribution_oracle.store.errors import BlobNotFoundError

    try:
        return app.store.get(digest).decode("utf-8", errors="replace")
    except BlobNotFoundError:
        return None


@command.command("audit")
@click.argument("datanet_id", type=int)
@click.option("--pending", is_flag=True, help="Audit pending contributions (the default).")
@click.option("--version", "version", type=int, default=None, help="Audit a published version's contributions.")
@click.option("--min-len", type=int, default=32, show_default=True, help="Shortest copied passage counted (bytes).")
@click.option("--threshold", type=float, default=0.5, show_default=True, help="Copied fraction that flags a near copy.")
@pass_app
def audit(app: App, datanet_id: int, pending: bool, version: int | None, min_len: int, threshold: float) -> None:
    """List contributions that look like copies of earlier approved ones, for the curator.

    By default each pending contribution is compared with every approved one; with --version V each
    contribution of version V is compared with those approved before it. A byte of a contribution counts as
    copied when a passage of at least --min-len bytes around it occurs verbatim in an earlier contribution;
    the verdict is "copy" from 95% copied, "near-copy" from --threshold.
    """
    import tempfile

    from attribution_oracle.attribution.copies import find_copies
    from attribution_oracle.attribution.spans import SpanIndex

    if pending and version is not None:
        raise UserError("--pending and --version exclude each other")
    if min_len < 1:
        raise UserError("--min-len must be at least 1")
    if not 0 < threshold <= 1:
        raise UserError("--threshold must lie in (0, 1]")
    app.sync()
    by_hash = {_get(c, "content_hash"): c for c in app.catalog.list_contributions(datanet_id)}
    if version is not None:
        record = app.catalog.get_version(datanet_id, version)
        manifest = json.loads(app.store.get(_get(record, "manifest_uri").removeprefix("sha256://")))
        sources = [by_hash[h.removeprefix("0x")] for h in manifest["contentHashes"]]
        candidates = sources
    else:
        sources = [by_hash[h] for h in app.catalog.approved_hashes(datanet_id)]
        candidates = [c for c in by_hash.values() if _get(c, "status") == "pending"]
    texts = {_get(c, "id"): _blob_text(app, _get(c, "content_hash")) for c in {*sources, *candidates}}
    missing = sorted(cid for cid, text in texts.items() if text is None)
    reports = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with (
        tempfile.TemporaryDirectory(prefix="audit-") as tmp,
        Progress(*columns, console=app.console, disable=app.json_output or not candidates) as progress,
    ):
        documents = [(str(_get(c, "id")), texts[_get(c, "id")]) for c in sources if texts[_get(c, "id")] is not None]
        index = SpanIndex.build_text(Path(tmp) / "index", documents)
        task = progress.add_task(f"auditing {len(candidates)} contributions", total=len(candidates))
        for c in sorted(candidates, key=lambda c: _get(c, "id")):
            cid = _get(c, "id")
            progress.advance(task)
            if texts[cid] is None:
                continue
            before = str(cid) if version is not None else None
            report = find_copies(index, texts[cid], min_len=min_len, before=before, threshold=threshold)
            reports.append((c, report))
    reports.sort(key=lambda item: (-item[1].coverage, _get(item[0], "id")))
    rows = [
        [
            _get(c, "id"),
            _get(c, "contributor"),
            r.total_tokens,
            f"{100 * r.coverage:.1f}%",
            r.longest_run,
            ", ".join(f"{sid} ({n})" for sid, n in r.sources[:3]),
            r.verdict,
        ]
        for c, r in reports
    ]
    data = {
        "datanetId": datanet_id,
        "mode": "version" if version is not None else "pending",
        "version": version,
        "minLen": min_len,
        "threshold": threshold,
        "compared": len(documents),
        "missingBlobs": missing,
        "contributions": [
            {"id": _get(c, "id"), "contributor": _get(c, "contributor"), **r.to_dict()} for c, r in reports
        ],
    }
    what = f"version {version}" if version is not None else "pending contributions"
    title = f"datanet {datanet_id} audit of {what} against {len(documents)} approved"
    if missing:
        title += f" (not in the local store, skipped: {', '.join(map(str, missing))})"
    app.emit(data, table(title, ["id", "contributor", "bytes", "copied", "longest", "sources", "verdict"], rows))
