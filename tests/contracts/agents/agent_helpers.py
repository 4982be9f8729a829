"""Constants and helpers of the agent tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import NamedTuple

ONE = 10**18
PRICE = 2 * ONE
SPLIT = (5_000, 4_000, 1_000)  # owner / contributors / Datanet owners
PROTOCOL_FEE_BPS = 500
BPS = 10_000
SERVICE_WINDOW = 3_600
RATES = (3 * ONE // 10, 7 * ONE // 10, ONE // 100)  # per 1k input, per 1k output, flat fee
MIN_STAKE = 100 * ONE
COOLDOWN = 7 * 86_400
SLASH_DELAY = 2 * 86_400
AGENT_BUDGET = 1_000 * ONE
MAX_PER_CALL = 5 * ONE
PERIOD = 86_400
PERIOD_CAP = 20 * ONE
TOTAL_CAP = 50 * ONE


def KEY_CAPS(expiry: int) -> tuple:  # noqa: N802 - reads like the constant tuple it builds
    """(maxPricePerCall, expiry, periodLength, periodCap, totalCap) of the test keys."""
    return (MAX_PER_CALL, expiry, PERIOD, PERIOD_CAP, TOTAL_CAP)


def split_fee(fee: int, owner_bps: int = SPLIT[0], datanets_bps: int = SPLIT[2], protocol_bps: int = PROTOCOL_FEE_BPS):
    """The market's split rule in Python: (protocol, owner, datanets, contributors)."""
    protocol = fee * protocol_bps // BPS
    rest = fee - protocol
    owner = rest * owner_bps // BPS
    datanets = rest * datanets_bps // BPS
    return (protocol, owner, datanets, rest - owner - datanets)


def metered_charge(input_tokens: int, output_tokens: int, rates=RATES) -> int:
    """flatFee + in*rateIn/1000 + out*rateOut/1000 (each product rounded down)."""
    return rates[2] + input_tokens * rates[0] // 1000 + output_tokens * rates[1] // 1000


class Receipt(NamedTuple):
    requestId: int
    payer: str
    modelId: int
    modelOwner: str
    fee: int
    paidAt: int
    split: tuple

    def arg(self) -> tuple:
        return (*self[:6], tuple(self.split))


def receipts_of(market, tx) -> list[Receipt]:
    """The receipts of every payment in a transaction, from its InferencePaid and FeeSplit events."""
    splits = {log.requestId: log for log in tx.decode_logs(market.FeeSplit)}
    out = []
    for paid in tx.decode_logs(market.InferencePaid):
        s = splits[paid.requestId]
        split = (s.protocolFee, s.ownerAmount, s.datanetOwnersAmount, s.contributorsAmount)
        out.append(Receipt(paid.requestId, paid.payer, paid.modelId, s.modelOwner, paid.fee, s.paidAt, split))
    return out


def meter_of(market, tx) -> tuple:
    """The ``Meter`` a per-token payment bound, from its MeteredPaid event."""
    m = tx.decode_logs(market.MeteredPaid)[0]
    return (m.inputPer1k, m.outputPer1k, m.flatFee, m.protocolBps, m.ownerBps, m.datanetOwnersBps)
