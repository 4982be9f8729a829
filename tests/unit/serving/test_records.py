"""The served-record log: idempotent per request id, conflicts refused, readable in order across processes."""

from __future__ import annotations

import multiprocessing

import pytest

from attribution_oracle.serving.served_log import ServedRecord, ServedRecordConflictError, ServedRecordStore


def _record(request_id: int, text: str = "out") -> ServedRecord:
    return ServedRecord(request_id, 1, "ab" * 32, "préfixe ✓", (1, 2), (3, 4), text, 1700000000.5)


def test_add_is_idempotent_and_conflicts_are_refused(tmp_path):
    store = ServedRecordStore(tmp_path / "served.db")
    assert store.add(_record(5)) is True
    assert store.add(_record(5)) is False
    with pytest.raises(ServedRecordConflictError):
        store.add(_record(5, text="different"))
    assert store.get(5) == _record(5)
    assert store.get(6) is None
    assert store.count() == 1


def test_add_many_is_one_transaction_idempotent_and_refuses_a_conflict_whole(tmp_path):
    store = ServedRecordStore(tmp_path / "served.db")
    assert store.add_many([_record(1), _record(2), _record(3)]) == 3
    assert store.add_many([_record(2), _record(4)]) == 1, "the unchanged record 2 is skipped"
    with pytest.raises(ServedRecordConflictError):
        store.add_many([_record(5), _record(3, text="different")])
    assert store.get(5) is None, "nothing of the refused call is written"
    assert [r.request_id for r in store.after(0)] == [1, 2, 3, 4]
    assert store.add_many([]) == 0


def test_after_pages_in_request_order_and_survives_reopening(tmp_path):
    store = ServedRecordStore(tmp_path / "served.db")
    for request_id in (9, 2, 7, 4):
        store.add(_record(request_id))
    reopened = ServedRecordStore(tmp_path / "served.db")
    assert [r.request_id for r in reopened.after(0, limit=3)] == [2, 4, 7]
    assert [r.request_id for r in reopened.after(7)] == [9]


def test_dict_round_trip():
    record = _record(3)
    assert ServedRecord.from_dict(record.to_dict()) == record


def _writer(path, start):
    store = ServedRecordStore(path)
    for request_id in range(start, start + 50):
        store.add(_record(request_id))


def test_two_writer_processes_lose_nothing(tmp_path):
    path = tmp_path / "served.db"
    ServedRecordStore(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, start)) for start in (1, 51)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert [r.request_id for r in ServedRecordStore(path).after(0, 1000)] == list(range(1, 101))
