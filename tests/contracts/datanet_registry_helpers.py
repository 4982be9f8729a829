"""Shared by the DatanetRegistry tests (tests/contracts/datanet_registry/ and the state machine in stateful/)."""

from __future__ import annotations

from contract_helpers import ONE, content_hash

MIN_STAKE = ONE
STAKE = 3 * ONE
MAX_PAGE = 100


def submit(registry, account, datanet_id, label, stake=STAKE, uri="file://blob", size=1024):
    """Contribute ``label`` (a bytes32 hash, or a name hashed with ``content_hash``); returns the contribution id."""
    h = label if isinstance(label, bytes) else content_hash(label)
    tx = registry.contribute(datanet_id, h, uri, size, stake, sender=account)
    return tx.return_value


def approve_all(registry, datanet_id, owner, labels, contributor, stake=MIN_STAKE):
    """Contribute every label as ``contributor`` and approve each as ``owner``; returns the ids."""
    ids = [submit(registry, contributor, datanet_id, label, stake) for label in labels]
    for cid in ids:
        registry.approve(cid, sender=owner)
    return ids
