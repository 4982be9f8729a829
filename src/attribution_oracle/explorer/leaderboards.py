"""Leaderboards: contributors, Datanets and models ranked by earnings and by influence.

- **Contributors**: earnings = cumulative wei in the latest accepted report (exact); influence = the sum over
  settled inferences of the normalised positive scores of their contributions (1.0 = one whole inference).
- **Datanets**: influence = the same sum over their contributions; earnings = each inference's data pools
  (contributors + Datanet owners) weighted by each of its contributions' share of that influence, floored to the
  wei per contribution and inference.
- **Models**: earnings = fees paid for their inferences; influence = settled inferences.
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution_oracle.explorer.ledger import Ledger


@dataclass(frozen=True)
class Entry:
    """One leaderboard row."""

    key: str
    earnings: int
    influence: float
    count: int


def contributor_board(ledger: Ledger, contributor_of: dict[str, str]) -> list[Entry]:
    """Every account that earned or has influence (``contributor_of``: contribution id -> address)."""
    latest = ledger.latest_epoch()
    rewards = latest.report.rewards if latest is not None and latest.report is not None else {}
    influence: dict[str, float] = {}
    used: dict[str, int] = {}
    for cid, weight in ledger.influence.items():
        owner = contributor_of.get(cid)
        if owner is not None:
            influence[owner] = influence.get(owner, 0.0) + weight
            used[owner] = used.get(owner, 0) + len(ledger.used_by.get(cid, ()))
    accounts = set(rewards) | set(influence)
    return [Entry(a, rewards.get(a, 0), influence.get(a, 0.0), used.get(a, 0)) for a in accounts]


def datanet_board(ledger: Ledger, datanet_of: dict[str, int]) -> list[Entry]:
    """Every Datanet whose contributions influenced a settled inference."""
    earnings: dict[int, int] = {}
    influence: dict[int, float] = {}
    used: dict[int, set[int]] = {}
    for cid, weight in ledger.influence.items():
        datanet = datanet_of.get(cid)
        if datanet is None or not ledger.used_by.get(cid):
            continue
        influence[datanet] = influence.get(datanet, 0.0) + weight
        earnings[datanet] = earnings.get(datanet, 0) + ledger.attributed.get(cid, 0)
        used.setdefault(datanet, set()).update(ledger.used_by[cid])
    return [Entry(str(d), earnings[d], influence[d], len(used[d])) for d in influence]


def model_board(ledger: Ledger) -> list[Entry]:
    """Every model with a paid inference."""
    return [Entry(str(m), fees, float(settled), paid) for m, (fees, paid, settled) in ledger.models.items() if paid]
