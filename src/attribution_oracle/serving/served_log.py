"""The durable log of served inferences: what the oracle attributes.

Every request the server answers is recorded once, keyed by its on-chain ``requestId``, in a SQLite
database (WAL mode; each write is one transaction). Oracle nodes read the log in ``request_id`` order,
either from this file or from the server's ``GET /v1/served?after=N&limit=M`` endpoint, which returns
``{"records": [ServedRecord.to_dict(), ...]}``.

A record served with retrieval (``serve --rag``) lists the retrieved contribution ids in rank order
(``retrieved``); its ``prompt`` is still the paid prompt and its ``prompt_token_ids`` the tokens the model read
(the prompt with the retrieved passages, ``serving.rag_retriever.augment``). Records written before the field existed
read back with ``retrieved == ()``: the log's column is added on open, and ``from_dict`` defaults it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from attribution_oracle.errors import UserError

__all__ = ["ServedRecord", "ServedRecordConflictError", "ServedRecordStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS served (
    request_id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL,
    adapter_hash TEXT NOT NULL,
    prompt TEXT NOT NULL,
    prompt_token_ids TEXT NOT NULL,
    output_token_ids TEXT NOT NULL,
    output_text TEXT NOT NULL,
    served_at REAL NOT NULL,
    retrieved TEXT NOT NULL DEFAULT '[]'
);
"""


class ServedRecordConflictError(UserError):
    """A request id was recorded before with different content."""


@dataclass(frozen=True)
class ServedRecord:
    """One served, paid inference: the request, the adapter that answered and what it generated."""

    request_id: int
    model_id: int
    adapter_hash: str
    prompt: str
    prompt_token_ids: tuple[int, ...]
    output_token_ids: tuple[int, ...]
    output_text: str
    served_at: float
    #: Contribution ids placed in the model's context by retrieval (``serve --rag``), best first; empty otherwise.
    retrieved: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form (token ids as lists)."""
        data = asdict(self)
        data["prompt_token_ids"] = list(self.prompt_token_ids)
        data["output_token_ids"] = list(self.output_token_ids)
        data["retrieved"] = list(self.retrieved)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ServedRecord:
        """Inverse of ``to_dict``."""
        return cls(
            request_id=int(data["request_id"]),
            model_id=int(data["model_id"]),
            adapter_hash=str(data["adapter_hash"]),
            prompt=str(data["prompt"]),
            prompt_token_ids=tuple(int(t) for t in data["prompt_token_ids"]),
            output_token_ids=tuple(int(t) for t in data["output_token_ids"]),
            output_text=str(data["output_text"]),
            served_at=float(data["served_at"]),
            retrieved=tuple(str(c) for c in data.get("retrieved") or ()),
        )


class ServedRecordStore:
    """Served records in a SQLite file; safe for one writer and many readers across processes."""

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) the log at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(served)")}
            if "retrieved" not in columns:  # a log written before retrieval existed
                db.execute("ALTER TABLE served ADD COLUMN retrieved TEXT NOT NULL DEFAULT '[]'")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def add(self, record: ServedRecord) -> bool:
        """Record ``record``; returns False if the same record was already there, raises on a different one."""
        return self.add_many([record]) == 1

    def add_many(self, records: list[ServedRecord]) -> int:
        """Record several records in one transaction (all or none); returns how many were new.

        A record already there unchanged is skipped; one already there with other content raises
        ``ServedRecordConflictError`` and nothing of the call is written."""
        added = 0
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for record in records:
                    existing = self._get(db, record.request_id)
                    if existing is not None:
                        if existing != record:
                            raise ServedRecordConflictError(
                                f"request {record.request_id} was already served differently"
                            )
                        continue
                    db.execute(
                        "INSERT INTO served (request_id, model_id, adapter_hash, prompt, prompt_token_ids, "
                        "output_token_ids, output_text, served_at, retrieved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        _record_row(record),
                    )
                    added += 1
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return added

    def get(self, request_id: int) -> ServedRecord | None:
        """The record of ``request_id``, or None if it was never served here."""
        with self._connect() as db:
            return self._get(db, request_id)

    def after(self, request_id: int = 0, limit: int = 1000) -> list[ServedRecord]:
        """Records with a request id greater than ``request_id``, ascending, at most ``limit``."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM served WHERE request_id > ? ORDER BY request_id LIMIT ?", (request_id, limit)
            ).fetchall()
        return [_row_to_record(row) for row in rows]

    def count(self) -> int:
        """How many requests were recorded."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM served").fetchone()[0])

    @staticmethod
    def _get(db: sqlite3.Connection, request_id: int) -> ServedRecord | None:
        row = db.execute("SELECT * FROM served WHERE request_id = ?", (request_id,)).fetchone()
        return _row_to_record(row) if row else None


def _record_row(record: ServedRecord) -> tuple:
    """The ``served`` table row of ``record``."""
    return (
        record.request_id,
        record.model_id,
        record.adapter_hash,
        record.prompt,
        json.dumps(list(record.prompt_token_ids)),
        json.dumps(list(record.output_token_ids)),
        record.output_text,
        record.served_at,
        json.dumps(list(record.retrieved)),
    )


def _row_to_record(row: tuple) -> ServedRecord:
    return ServedRecord(
        request_id=row[0],
        model_id=row[1],
        adapter_hash=row[2],
        prompt=row[3],
        prompt_token_ids=tuple(json.loads(row[4])),
        output_token_ids=tuple(json.loads(row[5])),
        output_text=row[6],
        served_at=row[7],
        retrieved=tuple(json.loads(row[8])) if len(row) > 8 else (),
    )
