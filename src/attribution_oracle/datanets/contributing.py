"""Contributing files to a Datanet: which files count, the checks that run before any transaction, and sending.

The content rule: a contribution is UTF-8 text. Empty files and files that are not text (they hold a NUL byte
or are not valid UTF-8) are refused before anything is stored or staked, since nothing could be trained on or
attributed to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.chain_errors import TransactionError
from attribution_oracle.chain.commit_reveal import BoundContribution, contribute_bound_many
from attribution_oracle.chain.open_token import ensure_allowance, events_of
from attribution_oracle.chain.reads import ChainReader
from attribution_oracle.chain.web3_client import ChainClient, format_eth
from attribution_oracle.errors import UserError
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import content_uri, digest_to_bytes32

__all__ = [
    "GAS_PER_CONTRIBUTION",
    "ContributionPlan",
    "collect_files",
    "content_problem",
    "fund_contributions",
    "plan_contributions",
    "send_contributions",
]

GAS_PER_CONTRIBUTION = 350_000  # commit + reveal


def content_problem(data: bytes) -> str | None:
    """Why ``data`` cannot be a contribution (``"is empty"``, ``"is not text ..."``), or None if it can."""
    if not data:
        return "is empty (0 bytes)"
    if b"\x00" in data:
        return "is not text (it holds NUL bytes; contributions must be UTF-8 text)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not text (it is not valid UTF-8; contributions must be UTF-8 text)"
    return None


def collect_files(paths: tuple[Path, ...] | list[Path]) -> list[Path]:
    """The files named, or found under folders (hidden files skipped), each checked against the content rule."""
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
    for path in files:
        if (problem := content_problem(path.read_bytes())) is not None:
            raise UserError(f"{path} {problem}; nothing was contributed")
    return files


@dataclass
class ContributionPlan:
    """What a contribute run will send: files not yet on-chain, with their digests, and the stake each."""

    datanet_id: int
    stake: int
    todo: list[tuple[Path, str]]
    skipped: int


def plan_contributions(
    reader: ChainReader,
    store: BlobStore,
    datanet_id: int,
    files: list[Path],
    contributor: str,
    stake: int | None,
) -> ContributionPlan:
    """Store the files and decide what to send; raise before any transaction on a bad stake or a duplicate.

    Files this contributor already contributed are skipped (a rerun resumes); a file whose content another
    contributor holds in the Datanet, or that repeats another file of the batch, refuses the whole batch.
    """
    min_stake = reader.datanet(datanet_id).min_stake
    stake_wei = min_stake if stake is None else stake
    if stake_wei < min_stake:
        raise UserError(f"datanet {datanet_id} requires a stake of at least {format_eth(min_stake)} OPEN")
    todo: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    skipped = 0
    for path in files:
        digest = store.put_file(path)
        if digest in seen:
            raise UserError(f"{path} has the same content as {seen[digest]}")
        seen[digest] = path
        existing = reader.contribution_id_of(datanet_id, digest_to_bytes32(digest))
        if existing:
            if reader.contribution(existing).contributor != contributor:
                raise UserError(f"{path} duplicates contribution {existing} already in datanet {datanet_id}")
            skipped += 1
            continue
        todo.append((path, digest))
    return ContributionPlan(datanet_id, stake_wei, todo, skipped)


def fund_contributions(client: ChainClient, registry, token, signer: LocalAccount, plan: ContributionPlan) -> None:
    """Check the sender's ETH (gas) and OPEN (stakes) for the whole plan and approve the stakes."""
    if not plan.todo:
        return
    needed = len(plan.todo) * GAS_PER_CONTRIBUTION * client.w3.eth.gas_price
    have = client.eth_balance(signer.address)
    if have < needed:
        raise TransactionError(
            f"{signer.address} has {format_eth(have)} ETH; {len(plan.todo)} contributions need about "
            f"{format_eth(needed)} ETH"
        )
    ensure_allowance(client, token, signer, registry.address, plan.stake * len(plan.todo))


def send_contributions(
    client: ChainClient,
    registry,
    signer: LocalAccount,
    plan: ContributionPlan,
    on_sent: Callable[[], None] | None = None,
) -> list[int]:
    """Commit every planned file, then reveal them all (after ``fund_contributions``); returns the new ids.

    The commitments go out back to back, then (a block later) the reveals: a few blocks per batch, not two per
    file; each reveal still lands after its commitment, so no content hash is shown before it is bound.
    """
    items = [
        BoundContribution(digest_to_bytes32(digest), content_uri(digest), path.stat().st_size, plan.stake, path.name)
        for path, digest in plan.todo
    ]
    receipts = contribute_bound_many(client, registry, signer, plan.datanet_id, items, on_sent)
    return [events_of(registry, "ContributionSubmitted", receipt)[0]["contributionId"] for receipt in receipts]
