"""The explorer's ledger: folding market and distributor events and reports, vetoes, records."""

from __future__ import annotations

from attribution_oracle.explorer.ledger import Ledger, citations_of
from attribution_oracle.serving.served_log import ServedRecord
from attribution_oracle.settlement.epoch_report import InferenceShares, build_report

A, B = "0x" + "a" * 40, "0x" + "b" * 40


def _event(event: str, block: int = 1, /, **args):
    return {"event": event, "args": args, "blockNumber": block, "logIndex": 0, "transactionHash": "0x" + "00" * 32}


def _paid(ledger: Ledger, rid: int) -> None:
    ledger.apply_events([
        _event("InferencePaid", requestId=rid, payer=A, modelId=1, inputHash=b"\0" * 32, fee=100, epoch=0),
        _event("FeeSplit", requestId=rid, modelOwner=B, paidAt=1, protocolFee=5, ownerAmount=47,
               datanetOwnersAmount=9, contributorsAmount=39),
        _event("InferenceServed", requestId=rid, operator=B),
    ])  # fmt: skip


def _report(epoch: int, rid: int, previous=None):
    from eth_utils import to_checksum_address

    shares = {to_checksum_address(A): 30, to_checksum_address(B): 18}
    return build_report(chain_id=1, distributor=B, config_digest=b"\0" * 32, epoch=epoch, from_block=1, to_block=2,
                        inferences=[InferenceShares(rid, 1, shares, {"1": 3.0, "2": 1.0, "3": -1.0})],
                        previous=previous)  # fmt: skip


def _submit(ledger: Ledger, report, epoch: int) -> None:
    submitted = _event("ReportSubmitted", 5, epoch=epoch, rewardsRoot=report.rewards_root,
                       totalCumulative=report.total_cumulative, attributionRoot=report.attribution_root,
                       reportURI=f"sha256://{epoch:064x}", claimableAt=0, transmitter=B)  # fmt: skip
    ledger.apply_events([submitted])
    ledger.add_report(epoch, report)


def test_reports_credit_earnings_and_influence_per_epoch():
    ledger = Ledger()
    _paid(ledger, 1)
    _paid(ledger, 2)
    first = _report(1, 1)
    _submit(ledger, first, 1)
    _submit(ledger, _report(2, 2, first), 2)
    account = next(iter(first.rewards))
    assert ledger.earnings[account] == {1: first.rewards[account], 2: first.rewards[account]}
    assert ledger.influence == {"1": 1.5, "2": 0.5}  # normalised positive scores, negative ignored
    assert ledger.used_by["1"] == [1, 2]
    assert ledger.cumulative(account) == 2 * first.rewards[account]
    assert ledger.inferences[1].split["contributors"] == 39 and ledger.inferences[1].status == "served"


def test_a_vetoed_report_no_longer_counts():
    ledger = Ledger()
    _paid(ledger, 1)
    report = _report(1, 1)
    _submit(ledger, report, 1)
    ledger.apply_events([_event("ReportVetoed", 6, epoch=1, rewardsRoot=report.rewards_root)])
    assert ledger.influence == {"1": 0.0, "2": 0.0} and ledger.used_by == {"1": [], "2": []}
    assert ledger.inferences[1].epoch is None and ledger.latest_epoch() is None


def test_records_attach_prompts_and_citations_when_present():
    ledger = Ledger()
    _paid(ledger, 3)
    record = ServedRecord(3, 1, "00", "<p>hi</p>", (1, 2), (3, 4), "out", 1.0)
    assert ledger.add_records([record]) == 1
    assert ledger.inferences[3].prompt == "<p>hi</p>" and ledger.inferences[3].output_token_ids == (3, 4)
    assert citations_of(record) == ()
    assert citations_of({"retrieved_ids": [4, "7"]}) == ("4", "7")


def test_the_poller_thread_applies_events_to_the_catalog(tmp_path):
    """Regression: the background poller used the catalog's connection from another thread and failed."""
    import threading

    from attribution_oracle.explorer.explorer_state import Explorer
    from attribution_oracle.store.catalog import Catalog

    explorer = Explorer(Catalog(tmp_path / "catalog.sqlite", "test"))
    created = _event("DatanetCreated", 3, datanetId=1, owner=A, name="<b>n</b>", metadataURI="", minStake=1, feePaid=1)
    errors = []

    def run() -> None:
        try:
            explorer.ingest([created], 3, "0x" + "11" * 32)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == [] and explorer.view.datanets[1].name == "<b>n</b>"
