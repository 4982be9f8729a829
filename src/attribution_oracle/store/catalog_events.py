"""Applying decoded DatanetRegistry and ModelRegistry events to the catalog's tables.

An event is a dict ``{"event": name, "args": {...}, "blockNumber": int, "logIndex": int,
"transactionHash": str}`` whose args carry the contract's own field names. Each handler checks the
invariants the contracts guarantee (ids are sequential, only pending contributions are decided, a
version covers every approval so far...), so a gap in the event stream fails loudly instead of
leaving a silently wrong mirror. Handlers never commit: the caller owns the transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from attribution_oracle.store.digests import bytes32_to_digest, normalize_digest
from attribution_oracle.store.store_errors import CatalogError, InvalidDigestError

__all__ = ["HANDLED_EVENTS", "EventRef", "apply_event", "normalize_hash32", "parse_event"]

_UINT256_LIMIT = 1 << 256
_INT64_LIMIT = 1 << 63  # ids, indices and counts are stored as SQLite integers


class _Reject(Exception):
    """Raised inside a handler; turned into a ``CatalogError`` that names the event."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """A decoded event with its position in the chain checked and normalised."""

    name: str
    args: Mapping[str, Any]
    block_number: int
    log_index: int
    transaction_hash: str

    @property
    def where(self) -> str:
        """Where the event sits, for messages."""
        return f"block {self.block_number}, log {self.log_index}"


def normalize_hash32(value: object, what: str) -> str:
    """Return a 32-byte hash (a transaction or block hash, as ``bytes`` or hex text) as lowercase ``0x`` hex."""
    try:
        if isinstance(value, bytes | bytearray):
            return "0x" + bytes32_to_digest(bytes(value))
        if isinstance(value, str):
            return "0x" + normalize_digest(value)
    except InvalidDigestError:
        pass
    raise CatalogError(f"{what} must be a 32-byte hash, got {_show(value)}")


def parse_event(event: object) -> EventRef:
    """Check the envelope of a decoded event (name, args, block number, log index, transaction hash)."""
    if not isinstance(event, Mapping):
        raise CatalogError(f"an event must be a dict, got {type(event).__name__}")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise CatalogError(f"event without a name: {_show(event)}")
    args = event.get("args")
    if not isinstance(args, Mapping):
        raise CatalogError(f"{name} event has no args dict")
    numbers = []
    for key in ("blockNumber", "logIndex"):
        value = event.get(key)
        if not _is_int(value) or value < 0:
            raise CatalogError(f"{name} event has a bad {key}: {_show(value)}")
        numbers.append(value)
    tx_hash = normalize_hash32(event.get("transactionHash"), f"{name} event's transactionHash")
    return EventRef(name, args, numbers[0], numbers[1], tx_hash)


def apply_event(conn: sqlite3.Connection, ref: EventRef) -> bool:
    """Apply one event inside the caller's transaction.

    Returns False for an event the catalog does not track or one already applied (same transaction
    hash and log index), True otherwise. Raises ``CatalogError`` for malformed args or an event that
    contradicts the catalog.
    """
    handler = _HANDLERS.get(ref.name)
    if handler is None:
        return False
    inserted = conn.execute(
        "INSERT OR IGNORE INTO processed_events (transaction_hash, log_index, block_number, event) VALUES (?, ?, ?, ?)",
        (ref.transaction_hash, ref.log_index, ref.block_number, ref.name),
    ).rowcount
    if inserted == 0:
        return False
    try:
        handler(conn, _Args(ref.args), ref.block_number)
    except _Reject as exc:
        raise CatalogError(f"cannot apply {ref.name} ({ref.where}): {exc}") from None
    except sqlite3.IntegrityError as exc:
        raise CatalogError(f"cannot apply {ref.name} ({ref.where}): {exc}") from exc
    return True


# ---------------------------------------------------------------- arguments


class _Args:
    """Typed access to an event's args; every failure names the field."""

    def __init__(self, args: Mapping[str, Any]) -> None:
        self._args = args

    def raw(self, key: str) -> Any:
        """The arg itself; a missing arg is rejected."""
        try:
            return self._args[key]
        except KeyError:
            raise _Reject(f"missing arg {key!r}") from None

    def id(self, key: str) -> int:
        """An id, index or count: a uint256 small enough for a SQLite integer."""
        return _uint(self.raw(key), key, _INT64_LIMIT)

    def amount(self, key: str) -> str:
        """A uint256 as decimal text (SQLite integers stop at 2**63)."""
        return str(_uint(self.raw(key), key))

    def text(self, key: str) -> str:
        """A string arg."""
        value = self.raw(key)
        if not isinstance(value, str):
            raise _Reject(f"arg {key!r} must be a string, got {_show(value)}")
        return value

    def address(self, key: str) -> str:
        """A 0x-prefixed 20-byte address, kept as given (checksummed)."""
        value = self.raw(key)
        if not (isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X") and _is_hex(value[2:])):
            raise _Reject(f"arg {key!r} must be an address, got {_show(value)}")
        return value

    def flag(self, key: str) -> bool:
        """A bool arg."""
        value = self.raw(key)
        if not isinstance(value, bool):
            raise _Reject(f"arg {key!r} must be a bool, got {_show(value)}")
        return value

    def digest(self, key: str) -> str:
        """A bytes32 (bytes or hex text) as a canonical digest."""
        value = self.raw(key)
        try:
            if isinstance(value, str):
                return normalize_digest(value)
            return bytes32_to_digest(value)
        except InvalidDigestError:
            raise _Reject(f"arg {key!r} must be a bytes32, got {_show(value)}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _uint(value: object, key: str, limit: int = _UINT256_LIMIT) -> int:
    if not _is_int(value) or not 0 <= value < limit:
        kind = "a uint256" if limit == _UINT256_LIMIT else "a uint256 below 2**63"
        raise _Reject(f"arg {key!r} must be {kind}, got {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ----------------------------------------------------------------- queries


def _one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _count(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _require_datanet(conn: sqlite3.Connection, datanet_id: int) -> str:
    owner = _one(conn, "SELECT owner FROM datanets WHERE id = ?", (datanet_id,))
    if owner is None:
        raise _Reject(f"unknown datanet {datanet_id}")
    return owner


def _approved_count(conn: sqlite3.Connection, datanet_id: int) -> int:
    return _count(
        conn, "SELECT COUNT(*) FROM contributions WHERE datanet_id = ? AND status = 'approved'", (datanet_id,)
    )


def _check_next_id(conn: sqlite3.Connection, table: str, kind: str, new_id: int) -> None:
    expected = _count(conn, f"SELECT COALESCE(MAX(id), 0) FROM {table}") + 1
    if new_id != expected:
        raise _Reject(f"expected {kind} {expected} next, got {new_id} (events missed or out of order?)")


# ---------------------------------------------------------------- handlers


def _datanet_created(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    datanet_id = a.id("datanetId")
    _check_next_id(conn, "datanets", "datanet", datanet_id)
    conn.execute(
        "INSERT INTO datanets (id, owner, name, metadata_uri, min_stake, fee_paid, created_block)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            datanet_id,
            a.address("owner"),
            a.text("name"),
            a.text("metadataURI"),
            a.amount("minStake"),
            a.amount("feePaid"),
            block,
        ),
    )


def _datanet_owner_changed(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    datanet_id = a.id("datanetId")
    previous, new = a.address("previousOwner"), a.address("newOwner")
    owner = _require_datanet(conn, datanet_id)
    if owner.lower() != previous.lower():
        raise _Reject(f"datanet {datanet_id} is owned by {owner}, not {previous}")
    conn.execute("UPDATE datanets SET owner = ? WHERE id = ?", (new, datanet_id))


def _curator_set(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    datanet_id, curator, enabled = a.id("datanetId"), a.address("curator"), a.flag("enabled")
    _require_datanet(conn, datanet_id)
    if enabled:
        conn.execute("INSERT OR IGNORE INTO curators (datanet_id, curator) VALUES (?, ?)", (datanet_id, curator))
    else:
        conn.execute("DELETE FROM curators WHERE datanet_id = ? AND curator = ?", (datanet_id, curator))


def _min_stake_set(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    datanet_id, min_stake = a.id("datanetId"), a.amount("minStake")
    _require_datanet(conn, datanet_id)
    conn.execute("UPDATE datanets SET min_stake = ? WHERE id = ?", (min_stake, datanet_id))


def _contribution_submitted(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    contribution_id, datanet_id = a.id("contributionId"), a.id("datanetId")
    row = (
        contribution_id,
        datanet_id,
        a.address("contributor"),
        a.digest("contentHash"),
        a.text("uri"),
        a.amount("size"),
        a.amount("stake"),
        block,
    )
    _require_datanet(conn, datanet_id)
    _check_next_id(conn, "contributions", "contribution", contribution_id)
    conn.execute(
        "INSERT INTO contributions (id, datanet_id, contributor, content_hash, uri, size, stake, status,"
        " submitted_block) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
        row,
    )


def _pending(conn: sqlite3.Connection, contribution_id: int, datanet_id: int) -> None:
    """Check that a contribution exists in ``datanet_id`` and is pending."""
    row = conn.execute("SELECT datanet_id, status FROM contributions WHERE id = ?", (contribution_id,)).fetchone()
    if row is None:
        raise _Reject(f"unknown contribution {contribution_id}")
    if row[0] != datanet_id:
        raise _Reject(f"contribution {contribution_id} belongs to datanet {row[0]}, not {datanet_id}")
    if row[1] != "pending":
        raise _Reject(f"contribution {contribution_id} is {row[1]}, not pending")


def _decide(conn: sqlite3.Connection, contribution_id: int, block: int, **fields: object) -> None:
    columns = ", ".join(f"{name} = ?" for name in fields)
    conn.execute(
        f"UPDATE contributions SET {columns}, decided_block = ? WHERE id = ?",
        (*fields.values(), block, contribution_id),
    )


def _contribution_approved(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    contribution_id, datanet_id = a.id("contributionId"), a.id("datanetId")
    curator, index, returned = a.address("curator"), a.id("approvalIndex"), a.amount("stakeReturned")
    _pending(conn, contribution_id, datanet_id)
    expected = _approved_count(conn, datanet_id)
    if index != expected:
        raise _Reject(f"approval index {index} but datanet {datanet_id} has {expected} approved contributions")
    _decide(
        conn,
        contribution_id,
        block,
        status="approved",
        approval_index=index,
        curator=curator,
        stake_returned=returned,
        stake_slashed="0",
    )


def _contribution_rejected(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    contribution_id, datanet_id = a.id("contributionId"), a.id("datanetId")
    curator, malicious = a.address("curator"), a.flag("malicious")
    returned, slashed = a.amount("stakeReturned"), a.amount("stakeSlashed")
    _pending(conn, contribution_id, datanet_id)
    _decide(
        conn,
        contribution_id,
        block,
        status="slashed" if malicious else "rejected",
        curator=curator,
        stake_returned=returned,
        stake_slashed=slashed,
    )


def _contribution_withdrawn(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    contribution_id, datanet_id = a.id("contributionId"), a.id("datanetId")
    contributor, returned = a.address("contributor"), a.amount("stakeReturned")
    _pending(conn, contribution_id, datanet_id)
    owner = _one(conn, "SELECT contributor FROM contributions WHERE id = ?", (contribution_id,))
    if owner.lower() != contributor.lower():
        raise _Reject(f"contribution {contribution_id} was submitted by {owner}, not {contributor}")
    _decide(conn, contribution_id, block, status="withdrawn", stake_returned=returned, stake_slashed="0")


def _version_published(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    datanet_id, version, count = a.id("datanetId"), a.id("version"), a.id("count")
    root, manifest = a.digest("merkleRoot"), a.text("manifestURI")
    _require_datanet(conn, datanet_id)
    expected = _count(conn, "SELECT COUNT(*) FROM versions WHERE datanet_id = ?", (datanet_id,)) + 1
    if version != expected:
        raise _Reject(f"expected version {expected} of datanet {datanet_id} next, got {version}")
    approved = _approved_count(conn, datanet_id)
    if count != approved:
        raise _Reject(
            f"version {version} covers {count} contributions but datanet {datanet_id} has {approved} approved"
        )
    conn.execute(
        "INSERT INTO versions (datanet_id, version, merkle_root, count, manifest_uri, published_block)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (datanet_id, version, root, count, manifest, block),
    )


def _split(value: object) -> tuple[int, int, int]:
    keys = ("ownerBps", "contributorsBps", "datanetOwnersBps")
    if isinstance(value, Mapping):
        missing = [k for k in keys if k not in value]
        if missing:
            raise _Reject(f"arg 'split' lacks {', '.join(missing)}")
        parts = [value[k] for k in keys]
    elif isinstance(value, list | tuple) and len(value) == 3:
        parts = list(value)
    else:
        raise _Reject(f"arg 'split' must be a dict of {', '.join(keys)}, got {_show(value)}")
    owner, contributors, datanet_owners = (
        _uint(v, f"split.{k}", _INT64_LIMIT) for k, v in zip(keys, parts, strict=True)
    )
    return owner, contributors, datanet_owners


def _sources(value: object) -> list[tuple[int, int]]:
    if not isinstance(value, list | tuple):
        raise _Reject(f"arg 'sources' must be a list, got {_show(value)}")
    pairs = []
    for item in value:
        if isinstance(item, Mapping):
            if "datanetId" not in item or "version" not in item:
                raise _Reject(f"a source must have datanetId and version, got {_show(item)}")
            pair = (item["datanetId"], item["version"])
        elif isinstance(item, list | tuple) and len(item) == 2:
            pair = (item[0], item[1])
        else:
            raise _Reject(f"a source must be a dict of datanetId and version, got {_show(item)}")
        pairs.append(
            (_uint(pair[0], "sources.datanetId", _INT64_LIMIT), _uint(pair[1], "sources.version", _INT64_LIMIT))
        )
    return pairs


def _model_registered(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    model_id = a.id("modelId")
    owner_bps, contributors_bps, datanet_owners_bps = _split(a.raw("split"))
    sources = _sources(a.raw("sources"))
    row = (
        model_id,
        a.address("owner"),
        a.digest("baseModelHash"),
        a.digest("adapterHash"),
        a.amount("price"),
        owner_bps,
        contributors_bps,
        datanet_owners_bps,
        a.text("metadataURI"),
        block,
    )
    _check_next_id(conn, "models", "model", model_id)
    for datanet_id, version in sources:
        known = _one(conn, "SELECT 1 FROM versions WHERE datanet_id = ? AND version = ?", (datanet_id, version))
        if known is None:
            raise _Reject(f"model {model_id} names datanet {datanet_id} version {version}, which is not published")
    conn.execute(
        "INSERT INTO models (id, owner, base_model_hash, adapter_hash, price, owner_bps, contributors_bps,"
        " datanet_owners_bps, metadata_uri, active, registered_block) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
        row,
    )
    conn.executemany(
        "INSERT INTO model_sources (model_id, position, datanet_id, version) VALUES (?, ?, ?, ?)",
        [(model_id, position, datanet_id, version) for position, (datanet_id, version) in enumerate(sources)],
    )


def _require_model(conn: sqlite3.Connection, model_id: int) -> tuple[str, int]:
    row = conn.execute("SELECT price, active FROM models WHERE id = ?", (model_id,)).fetchone()
    if row is None:
        raise _Reject(f"unknown model {model_id}")
    return row[0], row[1]


def _price_updated(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    model_id, old, new = a.id("modelId"), a.amount("oldPrice"), a.amount("newPrice")
    price, _ = _require_model(conn, model_id)
    if price != old:
        raise _Reject(f"model {model_id} costs {price}, not {old}")
    conn.execute("UPDATE models SET price = ? WHERE id = ?", (new, model_id))


def _model_deactivated(conn: sqlite3.Connection, a: _Args, block: int) -> None:
    model_id = a.id("modelId")
    _, active = _require_model(conn, model_id)
    if not active:
        raise _Reject(f"model {model_id} is already inactive")
    conn.execute("UPDATE models SET active = 0 WHERE id = ?", (model_id,))


_HANDLERS: dict[str, Callable[[sqlite3.Connection, _Args, int], None]] = {
    "DatanetCreated": _datanet_created,
    "DatanetOwnerChanged": _datanet_owner_changed,
    "CuratorSet": _curator_set,
    "MinStakeSet": _min_stake_set,
    "ContributionSubmitted": _contribution_submitted,
    "ContributionApproved": _contribution_approved,
    "ContributionRejected": _contribution_rejected,
    "ContributionWithdrawn": _contribution_withdrawn,
    "VersionPublished": _version_published,
    "ModelRegistered": _model_registered,
    "PriceUpdated": _price_updated,
    "ModelDeactivated": _model_deactivated,
}

#: Names of the events the catalog tracks; any other event is ignored.
HANDLED_EVENTS = frozenset(_HANDLERS)
