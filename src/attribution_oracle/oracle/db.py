"""The oracle node's durable state: one SQLite file (WAL), every step one transaction.

Tables (all amounts are decimal strings, hashes 0x hex):

- ``meta``: deployment key, signer, chain cursor (``cursor_number``, ``cursor_hash``).
- ``blocks``: ``(number, hash)`` of processed blocks that carried events, plus each cursor block; the reorg
  detector walks them back to the newest block the chain still has.
- ``payments``: ``InferencePaid`` + ``FeeSplit`` per request (model, block, the two data pools);
  ``payment_inputs``: its paid ``inputHash``.
- ``meta.config_digest``: the distributor's config digest the stored drafts and signatures were made under.
- ``served``: ``InferenceServed`` per request (block, when this node saw it).
- ``attributions``: per served request, the scores and exact per-account shares (the processed inferences);
  ``attribution_fallbacks``: why the equal split was used (a served record that failed a check, or none);
  ``attribution_retrieved``: the contribution ids a record served with retrieval (``serve --rag``) placed in the
  model's context, JSON list in rank order (only such requests have a row).
- ``submissions``: ``ReportSubmitted`` on-chain (vetoed ones flagged), with the report's block range once loaded.
- ``epochs``: this node's report draft per epoch (URI, block range, status).
- ``signatures``: own and peers' EIP-712 signatures per ``(epoch, report URI, signer)`` with the signed fields.
- ``disagreements``: peers that signed a different report for an epoch (logged once each).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attribution_oracle.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    request_id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    contributors_amount TEXT NOT NULL,
    datanet_owners_amount TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS served (
    request_id INTEGER PRIMARY KEY,
    block_number INTEGER NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS served_block ON served (block_number);
CREATE TABLE IF NOT EXISTS attributions (
    request_id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL,
    served_block INTEGER NOT NULL,
    scores TEXT NOT NULL,
    shares TEXT NOT NULL,
    attributed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attributions_block ON attributions (served_block);
CREATE TABLE IF NOT EXISTS submissions (
    epoch INTEGER PRIMARY KEY,
    report_uri TEXT NOT NULL,
    rewards_root TEXT NOT NULL,
    total_cumulative TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    vetoed INTEGER NOT NULL DEFAULT 0,
    to_block INTEGER
);
CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY,
    previous_uri TEXT NOT NULL,
    from_block INTEGER NOT NULL,
    to_block INTEGER NOT NULL,
    report_uri TEXT NOT NULL,
    inferences INTEGER NOT NULL,
    total_cumulative TEXT NOT NULL,
    built_at REAL NOT NULL,
    status TEXT NOT NULL,
    submit_tx TEXT
);
CREATE TABLE IF NOT EXISTS signatures (
    epoch INTEGER NOT NULL,
    report_uri TEXT NOT NULL,
    signer TEXT NOT NULL,
    rewards_root TEXT NOT NULL,
    total_cumulative TEXT NOT NULL,
    attribution_root TEXT NOT NULL,
    v INTEGER NOT NULL,
    r TEXT NOT NULL,
    s TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (epoch, report_uri, signer)
);
CREATE TABLE IF NOT EXISTS payment_inputs (request_id INTEGER PRIMARY KEY, input_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attribution_fallbacks (request_id INTEGER PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attribution_retrieved (request_id INTEGER PRIMARY KEY, ids TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS disagreements (
    epoch INTEGER NOT NULL,
    report_uri TEXT NOT NULL,
    signer TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (epoch, report_uri, signer)
);
"""


class StateMismatchError(UserError):
    """The state folder belongs to another deployment or signer."""


class OracleDB:
    """Connections (one per thread) to the node's SQLite file, and a transaction helper."""

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) the database at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self.connection()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use ``transaction`` for writes)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any exception."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read query."""
        return self.connection().execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple = ()) -> object:
        """The first column of the first row (None if no row)."""
        row = self.connection().execute(sql, params).fetchone()
        return row[0] if row else None

    def get_meta(self, key: str) -> str | None:
        """A meta value."""
        value = self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    @staticmethod
    def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        """Set a meta value inside a transaction."""
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?", (key, value, value)
        )

    def bind(self, deployment_key: str, signer: str) -> None:
        """Tie the state to one deployment and signer; refuses a folder made for another."""
        with self.transaction() as db:
            for key, value in (("deployment", deployment_key), ("signer", signer.lower())):
                found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                if found is None:
                    self.set_meta(db, key, value)
                elif found[0] != value:
                    raise StateMismatchError(
                        f"{self.path} holds state for {key} {found[0]}, not {value}: use another --state-dir"
                    )

    def cursor(self) -> tuple[int, str] | None:
        """The last processed block ``(number, hash)``, or None before the first."""
        number, block_hash = self.get_meta("cursor_number"), self.get_meta("cursor_hash")
        return None if number is None or block_hash is None else (int(number), block_hash)

    def rollback(self, ancestor: int) -> None:
        """Undo everything above block ``ancestor`` in one transaction (a reorg).

        Removes blocks, payments, served marks and submissions above it, the attributions of requests whose
        payment or served mark went, the drafts (with their signatures and disagreements) that reached past it,
        and puts back to 'signed' a draft whose submission was undone. The cursor moves to ``ancestor`` if its
        hash is stored, else it is cleared (the follower then re-reads from the deployment block).
        """
        with self.transaction() as db:
            db.execute("DELETE FROM blocks WHERE number > ?", (ancestor,))
            db.execute("DELETE FROM payments WHERE block_number > ?", (ancestor,))
            db.execute("DELETE FROM served WHERE block_number > ?", (ancestor,))
            db.execute("DELETE FROM attributions WHERE request_id NOT IN (SELECT request_id FROM served)")
            db.execute("DELETE FROM attributions WHERE request_id NOT IN (SELECT request_id FROM payments)")
            db.execute("DELETE FROM payment_inputs WHERE request_id NOT IN (SELECT request_id FROM payments)")
            db.execute(
                "DELETE FROM attribution_fallbacks WHERE request_id NOT IN (SELECT request_id FROM attributions)"
            )
            db.execute(
                "DELETE FROM attribution_retrieved WHERE request_id NOT IN (SELECT request_id FROM attributions)"
            )
            db.execute("DELETE FROM submissions WHERE block_number > ?", (ancestor,))
            stale = [e for (e,) in db.execute("SELECT epoch FROM epochs WHERE to_block > ?", (ancestor,))]
            for epoch in stale:
                db.execute("DELETE FROM epochs WHERE epoch = ?", (epoch,))
                db.execute("DELETE FROM signatures WHERE epoch = ?", (epoch,))
                db.execute("DELETE FROM disagreements WHERE epoch = ?", (epoch,))
            db.execute("UPDATE epochs SET status = 'signed' WHERE status = 'submitted' AND epoch NOT IN "
                       "(SELECT epoch FROM submissions)")  # fmt: skip
            row = db.execute("SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC LIMIT 1",
                             (ancestor,)).fetchone()  # fmt: skip
            if row is None or row[0] != ancestor:
                db.execute("DELETE FROM meta WHERE key IN ('cursor_number', 'cursor_hash')")  # re-read from the start
            else:
                self.set_meta(db, "cursor_number", str(row[0]))
                self.set_meta(db, "cursor_hash", row[1])

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
