"""The catalog's SQLite schema.

Chain tables mirror contract state and can always be rebuilt from events, so they are dropped and
recreated whenever the deployment or the schema version changes. ``local_files`` records what only
this machine knows (which file a content hash came from) and is kept across such resets.

uint256 amounts (stakes, fees, prices, sizes) are stored as decimal TEXT: SQLite integers are 64-bit
and 10 OPEN is already 10**19 wei.
"""

from __future__ import annotations

import sqlite3

__all__ = ["CHAIN_TABLES", "SCHEMA_VERSION", "create_chain_tables", "create_local_tables", "drop_chain_tables"]

#: Bump when a chain table changes; a catalog with another version is rebuilt from events.
SCHEMA_VERSION = 1

_CHAIN_DDL = """
CREATE TABLE cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL
);
CREATE TABLE processed_events (
    transaction_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (transaction_hash, log_index)
);
CREATE TABLE datanets (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    metadata_uri TEXT NOT NULL,
    min_stake TEXT NOT NULL,
    fee_paid TEXT NOT NULL,
    created_block INTEGER NOT NULL
);
CREATE TABLE curators (
    datanet_id INTEGER NOT NULL REFERENCES datanets (id),
    curator TEXT NOT NULL,
    PRIMARY KEY (datanet_id, curator)
);
CREATE TABLE contributions (
    id INTEGER PRIMARY KEY,
    datanet_id INTEGER NOT NULL REFERENCES datanets (id),
    contributor TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    uri TEXT NOT NULL,
    size TEXT NOT NULL,
    stake TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'slashed', 'withdrawn')),
    approval_index INTEGER,
    curator TEXT,
    stake_returned TEXT,
    stake_slashed TEXT,
    submitted_block INTEGER NOT NULL,
    decided_block INTEGER,
    UNIQUE (datanet_id, approval_index)
);
CREATE INDEX contributions_by_datanet ON contributions (datanet_id, status);
CREATE INDEX contributions_by_hash ON contributions (content_hash);
CREATE TABLE versions (
    datanet_id INTEGER NOT NULL REFERENCES datanets (id),
    version INTEGER NOT NULL,
    merkle_root TEXT NOT NULL,
    count INTEGER NOT NULL,
    manifest_uri TEXT NOT NULL,
    published_block INTEGER NOT NULL,
    PRIMARY KEY (datanet_id, version)
);
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    base_model_hash TEXT NOT NULL,
    adapter_hash TEXT NOT NULL,
    price TEXT NOT NULL,
    owner_bps INTEGER NOT NULL,
    contributors_bps INTEGER NOT NULL,
    datanet_owners_bps INTEGER NOT NULL,
    metadata_uri TEXT NOT NULL,
    active INTEGER NOT NULL CHECK (active IN (0, 1)),
    registered_block INTEGER NOT NULL
);
CREATE TABLE model_sources (
    model_id INTEGER NOT NULL REFERENCES models (id),
    position INTEGER NOT NULL,
    datanet_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (model_id, position),
    FOREIGN KEY (datanet_id, version) REFERENCES versions (datanet_id, version)
);
"""

#: Chain tables, children before parents (the order to drop them in).
CHAIN_TABLES = (
    "model_sources",
    "models",
    "versions",
    "contributions",
    "curators",
    "datanets",
    "processed_events",
    "cursor",
)

_LOCAL_DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS local_files (
    content_hash TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    name TEXT NOT NULL
);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run semicolon-separated statements one by one (``executescript`` would commit the open transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def create_local_tables(conn: sqlite3.Connection) -> None:
    """Create ``meta`` and ``local_files`` if they do not exist yet."""
    _run_script(conn, _LOCAL_DDL)


def create_chain_tables(conn: sqlite3.Connection) -> None:
    """Create the tables that mirror chain state."""
    _run_script(conn, _CHAIN_DDL)


def drop_chain_tables(conn: sqlite3.Connection) -> None:
    """Drop every table that mirrors chain state (children first, so foreign keys never dangle)."""
    for table in CHAIN_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
