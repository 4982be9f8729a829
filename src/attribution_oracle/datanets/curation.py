"""Curating a Datanet: approving and rejecting contributions in batches that apply all or nothing.

Before the first transaction every id is checked: no id twice, and each decision dry-run (``eth_call``) as the
curator. One bad id refuses the whole batch, so ``approve 13 1 14`` never approves 13 and leaves 14 pending.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError

__all__ = ["CurationError", "curate"]


class CurationError(UserError):
    """A batch of curation decisions that would not all succeed; nothing was sent."""


def _decision(registry, action: str, contribution_id: int, malicious: bool):
    if action == "approve":
        return registry.functions.approve(contribution_id)
    return registry.functions.reject(contribution_id, malicious)


def curate(
    client: ChainClient,
    registry,
    signer: LocalAccount,
    action: str,
    contribution_ids: Sequence[int],
    malicious: bool = False,
) -> list[int]:
    """Apply ``action`` ("approve" or "reject") to every id, after checking every id; returns the ids decided."""
    if action not in ("approve", "reject"):
        raise ValueError(f"unknown curation action {action!r}")
    seen: set[int] = set()
    for cid in contribution_ids:
        if cid in seen:
            raise CurationError(f"contribution {cid} is given twice; nothing was sent")
        seen.add(cid)
    problems = []
    for cid in contribution_ids:
        reason = client.simulate(_decision(registry, action, cid, malicious), signer.address)
        if reason is not None:
            problems.append(f"contribution {cid}: {reason}")
    if problems:
        raise CurationError(f"{action} would fail for {'; '.join(problems)}; nothing was sent")
    # back to back (consecutive nonces keep the approval order): a few blocks for the batch, not one per id
    client.send_many(
        [(_decision(registry, action, cid, malicious), f"{action} contribution {cid}") for cid in contribution_ids],
        signer,
    )
    return list(contribution_ids)
