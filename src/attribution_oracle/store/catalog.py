"""A SQLite catalog mirroring DatanetRegistry and ModelRegistry state from their events.

The catalog is a cache of the chain: it stores the last processed block (number and hash) and can be
rebuilt from events at any time. It is bound to one deployment: opened with another deployment key
(a redeploy, a fresh local chain) it drops its chain tables and starts again. It also keeps, in
``local_files``, which local file each contributed content hash came from; that survives resets.

SQLite runs in WAL mode with foreign keys on; every write is one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attribution_oracle.store.catalog_events import EventRef, apply_event, normalize_hash32, parse_event
from attribution_oracle.store.catalog_records import (
    CONTRIBUTION_STATUSES,
    Contribution,
    Datanet,
    LocalFile,
    Model,
    ModelSource,
    Version,
)
from attribution_oracle.store.digests import validate_digest
from attribution_oracle.store.schema import SCHEMA_VERSION, create_chain_tables, create_local_tables, drop_chain_tables
from attribution_oracle.store.store_errors import CatalogError, UnknownIdError

__all__ = ["Catalog"]

_DATANET_SQL = """
SELECT d.id, d.owner, d.name, d.metadata_uri, d.min_stake, d.fee_paid, d.created_block,
       (SELECT COUNT(*) FROM contributions c WHERE c.datanet_id = d.id),
       (SELECT COUNT(*) FROM contributions c WHERE c.datanet_id = d.id AND c.status = 'approved'),
       (SELECT COUNT(*) FROM versions v WHERE v.datanet_id = d.id)
FROM datanets d
"""
_CONTRIBUTION_SQL = """
SELECT id, datanet_id, contributor, content_hash, uri, size, stake, status, approval_index, curator,
       stake_returned, stake_slashed, submitted_block, decided_block
FROM contributions
"""
_VERSION_SQL = "SELECT datanet_id, version, merkle_root, count, manifest_uri, published_block FROM versions"
_MODEL_SQL = """
SELECT id, owner, base_model_hash, adapter_hash, price, owner_bps, contributors_bps, datanet_owners_bps,
       metadata_uri, active, registered_block
FROM models
"""


class Catalog:
    """The local mirror of on-chain Datanets, contributions, versions and models."""

    def __init__(self, path: Path, deployment_key: str, *, timeout: float = 30.0) -> None:
        """Open (creating if needed) the catalog at ``path`` for the deployment named ``deployment_key``.

        If the file holds another deployment (or an older schema), its chain tables are dropped and
        recreated in one transaction and ``was_reset`` is True. ``timeout`` is how long to wait, in
        seconds, for another process's write to finish.
        """
        if not isinstance(deployment_key, str) or not deployment_key:
            raise CatalogError("the catalog's deployment key must be a non-empty string")
        self.path = Path(path)
        self.deployment_key = deployment_key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise CatalogError(f"cannot use WAL mode for the catalog at {self.path} (journal mode is {mode})")
            self.was_reset = self._prepare()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise CatalogError(f"cannot open the catalog at {self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r}, {self.deployment_key!r})"

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    # ------------------------------------------------------------ transactions

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed if the block succeeds, rolled back if it raises."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        with conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so a query spanning several statements sees one snapshot."""
        conn = self._conn
        conn.execute("BEGIN")
        with conn:
            yield conn

    def _prepare(self) -> bool:
        with self._write() as conn:
            create_local_tables(conn)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("deployment_key") == self.deployment_key and meta.get("schema_version") == str(SCHEMA_VERSION):
                return False
            drop_chain_tables(conn)
            create_chain_tables(conn)
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("deployment_key", self.deployment_key), ("schema_version", str(SCHEMA_VERSION))],
            )
            return bool(meta)

    def reset(self) -> None:
        """Forget all chain state (e.g. after a reorg below the cursor) so it can be re-synced from the start.

        ``local_files`` is kept.
        """
        with self._write() as conn:
            drop_chain_tables(conn)
            create_chain_tables(conn)

    # ----------------------------------------------------------------- events

    def apply(self, events: list[dict[str, Any]], to_block: int, to_block_hash: str) -> int:
        """Apply a batch of decoded events and move the cursor to ``to_block``, all in one transaction.

        Events are applied in (blockNumber, logIndex) order whatever order they come in; events the
        catalog does not track are ignored, and events already applied (same transaction hash and log
        index) are skipped. Every event must lie at or below ``to_block``, and the cursor never moves
        backwards. If anything fails, nothing changes. Returns how many events were newly applied.
        """
        if isinstance(to_block, bool) or not isinstance(to_block, int) or to_block < 0:
            raise CatalogError(f"to_block must be a block number, got {to_block!r}")
        block_hash = normalize_hash32(to_block_hash, "to_block_hash")
        refs: list[EventRef] = sorted(
            (parse_event(event) for event in events), key=lambda ref: (ref.block_number, ref.log_index)
        )
        if refs and refs[-1].block_number > to_block:
            last = refs[-1]
            raise CatalogError(f"{last.name} at block {last.block_number} is past the batch's last block {to_block}")
        with self._write() as conn:
            row = conn.execute("SELECT block_number FROM cursor WHERE id = 1").fetchone()
            if row is not None and to_block < row[0]:
                raise CatalogError(f"the catalog is at block {row[0]}; it cannot move back to block {to_block}")
            applied = sum(apply_event(conn, ref) for ref in refs)
            conn.execute(
                "INSERT INTO cursor (id, block_number, block_hash) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET block_number = excluded.block_number,"
                " block_hash = excluded.block_hash",
                (to_block, block_hash),
            )
        return applied

    def cursor(self) -> tuple[int, str] | None:
        """Return the last processed block as (number, hash), or None before the first batch."""
        row = self._conn.execute("SELECT block_number, block_hash FROM cursor WHERE id = 1").fetchone()
        return None if row is None else (row[0], row[1])

    # ------------------------------------------- the chain follower's sink

    def known_blocks(self) -> list[tuple[int, str]]:
        """The blocks whose hashes the catalog keeps (only the cursor's): a reorg below it means a full re-read."""
        cursor = self.cursor()
        return [] if cursor is None else [cursor]

    def rollback(self, ancestor: int) -> None:
        """Forget the chain state above block ``ancestor``: events are not undone one by one, so all of it goes.

        The catalog is a cache of the chain; the follower re-reads it from the deployment block.
        """
        cursor = self.cursor()
        if cursor is not None and cursor[0] > ancestor:
            self.reset()

    def commit(self, events: list[dict[str, Any]], end: int, end_hash: str) -> None:
        """Apply one follower range (``apply``)."""
        self.apply(events, end, end_hash)

    # --------------------------------------------------------------- datanets

    def list_datanets(self) -> list[Datanet]:
        """Return every Datanet, by id."""
        with self._read() as conn:
            rows = conn.execute(_DATANET_SQL + " ORDER BY d.id").fetchall()
            curators: dict[int, list[str]] = {}
            for datanet_id, curator in conn.execute("SELECT datanet_id, curator FROM curators ORDER BY curator"):
                curators.setdefault(datanet_id, []).append(curator)
        return [_datanet(row, curators.get(row[0], [])) for row in rows]

    def get_datanet(self, datanet_id: int) -> Datanet:
        """Return one Datanet; ``UnknownIdError`` if the catalog has not seen it."""
        with self._read() as conn:
            row = conn.execute(_DATANET_SQL + " WHERE d.id = ?", (datanet_id,)).fetchone()
            if row is None:
                raise UnknownIdError("datanet", datanet_id)
            curators = [
                r[0]
                for r in conn.execute(
                    "SELECT curator FROM curators WHERE datanet_id = ? ORDER BY curator", (datanet_id,)
                )
            ]
        return _datanet(row, curators)

    def _require_datanet(self, conn: sqlite3.Connection, datanet_id: int) -> None:
        if conn.execute("SELECT 1 FROM datanets WHERE id = ?", (datanet_id,)).fetchone() is None:
            raise UnknownIdError("datanet", datanet_id)

    # ---------------------------------------------------------- contributions

    def list_contributions(self, datanet_id: int, status: str | None = None) -> list[Contribution]:
        """Return a Datanet's contributions in submission order, optionally only those with ``status``."""
        if status is not None and status not in CONTRIBUTION_STATUSES:
            raise CatalogError(
                f"unknown contribution status {status!r} (expected one of {', '.join(CONTRIBUTION_STATUSES)})"
            )
        with self._read() as conn:
            self._require_datanet(conn, datanet_id)
            if status is None:
                rows = conn.execute(_CONTRIBUTION_SQL + " WHERE datanet_id = ? ORDER BY id", (datanet_id,))
            else:
                rows = conn.execute(
                    _CONTRIBUTION_SQL + " WHERE datanet_id = ? AND status = ? ORDER BY id", (datanet_id, status)
                )
            return [_contribution(row) for row in rows]

    def get_contribution(self, contribution_id: int) -> Contribution:
        """Return one contribution; ``UnknownIdError`` if the catalog has not seen it."""
        row = self._conn.execute(_CONTRIBUTION_SQL + " WHERE id = ?", (contribution_id,)).fetchone()
        if row is None:
            raise UnknownIdError("contribution", contribution_id)
        return _contribution(row)

    def approved_hashes(self, datanet_id: int) -> list[str]:
        """Return the content hashes of a Datanet's approved contributions in approval order (the Merkle leaves)."""
        with self._read() as conn:
            self._require_datanet(conn, datanet_id)
            rows = conn.execute(
                "SELECT content_hash FROM contributions WHERE datanet_id = ? AND status = 'approved'"
                " ORDER BY approval_index",
                (datanet_id,),
            )
            return [row[0] for row in rows]

    # --------------------------------------------------------------- versions

    def list_versions(self, datanet_id: int) -> list[Version]:
        """Return a Datanet's published versions, oldest first."""
        with self._read() as conn:
            self._require_datanet(conn, datanet_id)
            rows = conn.execute(_VERSION_SQL + " WHERE datanet_id = ? ORDER BY version", (datanet_id,))
            return [_version(row) for row in rows]

    def get_version(self, datanet_id: int, version: int) -> Version:
        """Return one published version; ``UnknownIdError`` for an unknown Datanet or version."""
        with self._read() as conn:
            self._require_datanet(conn, datanet_id)
            row = conn.execute(_VERSION_SQL + " WHERE datanet_id = ? AND version = ?", (datanet_id, version)).fetchone()
        if row is None:
            raise UnknownIdError("version", f"{version} of datanet {datanet_id}")
        return _version(row)

    # ----------------------------------------------------------------- models

    def list_models(self) -> list[Model]:
        """Return every model, by id, each with its sources."""
        with self._read() as conn:
            rows = conn.execute(_MODEL_SQL + " ORDER BY id").fetchall()
            sources: dict[int, list[ModelSource]] = {}
            for model_id, datanet_id, version in conn.execute(
                "SELECT model_id, datanet_id, version FROM model_sources ORDER BY model_id, position"
            ):
                sources.setdefault(model_id, []).append(ModelSource(datanet_id, version))
        return [_model(row, sources.get(row[0], [])) for row in rows]

    def get_model(self, model_id: int) -> Model:
        """Return one model with the Datanet versions it was trained on; ``UnknownIdError`` if unseen."""
        with self._read() as conn:
            row = conn.execute(_MODEL_SQL + " WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                raise UnknownIdError("model", model_id)
            sources = [
                ModelSource(datanet_id, version)
                for datanet_id, version in conn.execute(
                    "SELECT datanet_id, version FROM model_sources WHERE model_id = ? ORDER BY position", (model_id,)
                )
            ]
        return _model(row, sources)

    # ------------------------------------------------------------ local files

    def record_local_file(self, content_hash: str, path: Path, name: str) -> None:
        """Remember that ``content_hash`` came from the local file ``path`` (stored absolute) named ``name``.

        A later record for the same hash replaces the earlier one.
        """
        digest = validate_digest(content_hash)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO local_files (content_hash, path, name) VALUES (?, ?, ?)"
                " ON CONFLICT (content_hash) DO UPDATE SET path = excluded.path, name = excluded.name",
                (digest, str(Path(path).absolute()), str(name)),
            )

    def local_file(self, content_hash: str) -> LocalFile | None:
        """Return the local file ``content_hash`` was contributed from, or None if this machine never recorded one."""
        digest = validate_digest(content_hash)
        row = self._conn.execute("SELECT path, name FROM local_files WHERE content_hash = ?", (digest,)).fetchone()
        return None if row is None else LocalFile(digest, Path(row[0]), row[1])


# --------------------------------------------------------------- row mapping


def _opt_int(value: str | int | None) -> int | None:
    return None if value is None else int(value)


def _datanet(row: tuple[Any, ...], curators: list[str]) -> Datanet:
    return Datanet(
        id=row[0],
        owner=row[1],
        name=row[2],
        metadata_uri=row[3],
        min_stake=int(row[4]),
        fee_paid=int(row[5]),
        created_block=row[6],
        contribution_count=row[7],
        approved_count=row[8],
        version_count=row[9],
        curators=tuple(curators),
    )


def _contribution(row: tuple[Any, ...]) -> Contribution:
    return Contribution(
        id=row[0],
        datanet_id=row[1],
        contributor=row[2],
        content_hash=row[3],
        uri=row[4],
        size=int(row[5]),
        stake=int(row[6]),
        status=row[7],
        approval_index=row[8],
        curator=row[9],
        stake_returned=_opt_int(row[10]),
        stake_slashed=_opt_int(row[11]),
        submitted_block=row[12],
        decided_block=row[13],
    )


def _version(row: tuple[Any, ...]) -> Version:
    return Version(
        datanet_id=row[0], version=row[1], merkle_root=row[2], count=row[3], manifest_uri=row[4], published_block=row[5]
    )


def _model(row: tuple[Any, ...], sources: list[ModelSource]) -> Model:
    return Model(
        id=row[0],
        owner=row[1],
        base_model_hash=row[2],
        adapter_hash=row[3],
        price=int(row[4]),
        owner_bps=row[5],
        contributors_bps=row[6],
        datanet_owners_bps=row[7],
        metadata_uri=row[8],
        active=bool(row[9]),
        registered_block=row[10],
        sources=tuple(sources),
    )
