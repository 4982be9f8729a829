"""The epoch boundary rule: block and time epochs, and which epoch the next report settles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution_oracle.oracle.epochs import BlockEpochs, TimeEpochs, next_epoch


@given(blocks=st.integers(1, 50), block=st.integers(0, 10_000), confirmed=st.integers(0, 10_000))
def test_block_epochs_partition_the_chain(blocks: int, block: int, confirmed: int) -> None:
    clock = BlockEpochs(blocks)
    epoch = clock.index(block)
    assert epoch == block // blocks  # InferenceMarket tags payments with block.number // epochBlocks
    end = clock.end(epoch, confirmed)
    last = (epoch + 1) * blocks - 1
    if confirmed > last:
        assert end == last and clock.index(end) == epoch and clock.index(end + 1) == epoch + 1
    else:
        assert end is None  # not closed until a confirmed block lies past it


def _timeline(gaps: list[int]) -> list[int]:
    """Block timestamps from non-negative gaps (equal timestamps happen on fast chains)."""
    stamps, now = [], 1_700_000_000
    for gap in gaps:
        now += gap
        stamps.append(now)
    return stamps


@given(gaps=st.lists(st.integers(0, 7), min_size=2, max_size=300), seconds=st.integers(1, 30), data=st.data())
def test_time_epochs_end_at_the_last_block_before_the_boundary(gaps: list[int], seconds: int, data) -> None:
    stamps = _timeline(gaps)
    reads: list[int] = []

    def timestamp(block: int) -> int:
        reads.append(block)
        return stamps[block]

    clock = TimeEpochs(seconds, timestamp)
    block = data.draw(st.integers(0, len(stamps) - 1))
    confirmed = data.draw(st.integers(block, len(stamps) - 1))
    epoch = clock.index(block)
    assert epoch == stamps[block] // seconds
    end = clock.end(epoch, confirmed)
    closed = stamps[confirmed] >= (epoch + 1) * seconds
    if not closed:
        assert end is None
    else:
        assert end is not None and block <= end < confirmed
        assert stamps[end] // seconds == epoch
        assert stamps[end + 1] // seconds > epoch  # the next block belongs to a later epoch
    calls = len(reads)
    clock.end(epoch, confirmed)
    assert len(reads) == calls, "timestamps are read from the chain once"


def test_time_epochs_refuse_a_zero_length() -> None:
    with pytest.raises(ValueError, match="seconds"):
        TimeEpochs(0, lambda block: block)


@given(
    blocks=st.integers(1, 20),
    previous=st.integers(0, 200),
    first=st.integers(0, 5_000),
    accepted_delta=st.none() | st.integers(0, 500),
)
def test_next_epoch_rule(blocks: int, previous: int, first: int, accepted_delta: int | None) -> None:
    clock = BlockEpochs(blocks)
    accepted_at = None if accepted_delta is None else max(0, first - accepted_delta)
    epoch = next_epoch(clock, previous, first, accepted_at)
    assert epoch > previous, "epochs strictly increase (the distributor requires it)"
    assert epoch >= clock.index(first), "the first unsettled served block lies inside the report's range"
    assert epoch == next_epoch(clock, previous, first, accepted_at), "a pure function of chain data"
    if accepted_at is None:
        assert epoch == max(previous + 1, clock.index(first))
    else:
        # catch-up: every epoch that had closed when the previous report landed is covered
        assert epoch >= clock.index(accepted_at) - 1
        assert epoch == max(previous + 1, clock.index(first), clock.index(accepted_at) - 1)
        if epoch == clock.index(accepted_at) - 1 > max(previous + 1, clock.index(first)):
            assert (epoch + 1) * blocks - 1 < accepted_at, "a catch-up epoch had closed before the acceptance"


def test_next_epoch_examples() -> None:
    clock = BlockEpochs(5)
    assert next_epoch(clock, 0, 12, None) == 2  # first report: the epoch of the first served block
    assert next_epoch(clock, 2, 13, 16) == 3  # nodes keep up: one epoch per report
    assert next_epoch(clock, 3, 17, 41) == 7  # behind: covers epochs 4..7 (blocks up to 39) in one report
    assert next_epoch(clock, 9, 17, 41) == 10  # never goes back
