"""Served-record sources: the server's log file and its HTTP endpoint (a real FastAPI app on a free port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.oracle import served_sources as sources
from attribution_oracle.oracle.served_sources import (
    HttpServedRecords,
    ServedSourceError,
    StoreServedRecords,
    open_source,
    records_for,
)
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore

IDS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377]


def record(request_id: int) -> ServedRecord:
    prompt = f"prompt {request_id}: é ✓"
    output = f"out {request_id}"
    served_at = 1_700_000_000.5 + request_id
    return ServedRecord(
        request_id,
        1 + request_id % 2,
        "22" * 32,
        prompt,
        tuple(prompt.encode()),
        tuple(output.encode()),
        output,
        served_at,
    )


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("served") / "served.sqlite"
    store = ServedRecordStore(path)
    for request_id in IDS:
        store.add(record(request_id))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(log_path: Path) -> Iterator[str]:
    """A tiny FastAPI app serving ``GET /v1/served?after=N&limit=M`` from the ServedRecordStore (as the server)."""
    store = ServedRecordStore(log_path)
    app = FastAPI()

    @app.get("/v1/served")
    def served(after: int = 0, limit: int = 100) -> dict:
        return {"records": [r.to_dict() for r in store.after(after, limit)]}

    @app.get("/broken/v1/served")
    def broken() -> dict:
        return {"unexpected": True}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_store_source_reads_the_log_in_request_order(log_path: Path) -> None:
    source = open_source(str(log_path))
    assert isinstance(source, StoreServedRecords)
    assert [r.request_id for r in source.after(0, 100)] == IDS
    assert [r.request_id for r in source.after(5, 3)] == [8, 13, 21]
    assert source.after(377, 10) == []
    assert source.after(0, 1)[0] == record(1)


def test_http_source_gives_the_same_records(log_path: Path, server_url: str) -> None:
    source = open_source(server_url + "/")
    assert isinstance(source, HttpServedRecords)
    local = StoreServedRecords(log_path)
    for after, limit in ((0, 100), (5, 3), (377, 10), (0, 1)):
        assert source.after(after, limit) == local.after(after, limit)


@settings(max_examples=40, deadline=None)
@given(wanted=st.lists(st.integers(0, 400), max_size=30), page=st.integers(1, 6))
def test_records_for_finds_exactly_the_held_records_across_pages(log_path, server_url, wanted, page) -> None:
    original = sources.PAGE
    sources.PAGE = page  # small pages: the paging loop is exercised
    try:
        for source in (StoreServedRecords(log_path), HttpServedRecords(server_url)):
            found = records_for(source, wanted)
            assert set(found) == set(wanted) & set(IDS)
            assert all(found[i] == record(i) for i in found)
    finally:
        sources.PAGE = original


def test_unreadable_sources_raise_a_clear_error(tmp_path: Path, server_url: str) -> None:
    with pytest.raises(ServedSourceError, match="does not exist"):
        open_source(str(tmp_path / "missing.sqlite"))
    with pytest.raises(ServedSourceError, match="cannot read served records"):
        HttpServedRecords(f"http://127.0.0.1:{_free_port()}", timeout_s=2).after(0, 10)  # nobody listens
    with pytest.raises(ServedSourceError, match="cannot read served records"):
        HttpServedRecords(server_url + "/broken").after(0, 10)  # answers, but not records
    with pytest.raises(ServedSourceError):
        HttpServedRecords(server_url + "/nothing-here").after(0, 10)  # 404
