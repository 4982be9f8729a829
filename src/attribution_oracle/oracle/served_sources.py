"""Where a node reads served-inference records: the server's log file or its ``GET /v1/served`` endpoint."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import httpx
from eth_account.signers.local import LocalAccount

from attribution_oracle.errors import UserError
from attribution_oracle.serving.served_access import served_query_headers
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore

PAGE = 500


class ServedSourceError(UserError):
    """The served-record source cannot be read."""


class ServedRecords(Protocol):
    """A source of served records, read in request-id order."""

    def after(self, request_id: int, limit: int) -> list[ServedRecord]:
        """Records with a request id greater than ``request_id``, ascending, at most ``limit``."""
        ...


def records_for(source: ServedRecords, request_ids: Iterable[int]) -> dict[int, ServedRecord]:
    """The records of ``request_ids`` that the source holds (missing ones are simply absent)."""
    wanted = sorted(set(request_ids))
    found: dict[int, ServedRecord] = {}
    if not wanted:
        return found
    position, last = wanted[0] - 1, wanted[-1]
    wanted_set = set(wanted)
    while position < last:
        page = source.after(position, min(PAGE, last - position))
        if not page:
            break
        for record in page:
            if record.request_id in wanted_set:
                found[record.request_id] = record
        position = page[-1].request_id
    return found


class StoreServedRecords:
    """Read the server's ``ServedRecordStore`` file directly (same machine)."""

    def __init__(self, path: Path) -> None:
        """Open the log at ``path`` (it must exist: the server creates it)."""
        path = Path(path)
        if not path.is_file():
            raise ServedSourceError(f"served-record log {path} does not exist (start the server first)")
        self.store = ServedRecordStore(path)

    def after(self, request_id: int, limit: int) -> list[ServedRecord]:
        """Records after ``request_id``."""
        return self.store.after(request_id, limit)

    def __repr__(self) -> str:
        return f"StoreServedRecords({str(self.store.path)!r})"


class HttpServedRecords:
    """Read records from a server's ``GET /v1/served?after=N&limit=M``, each query signed by the node's oracle
    signer (the server answers only on-chain oracle signers, see ``serving.served_access``)."""

    def __init__(
        self, url: str, timeout_s: float = 10.0, signer: LocalAccount | None = None, chain_id: int | None = None
    ) -> None:
        """``url`` is the server's base URL (``http://host:port``); queries are signed when ``signer`` is given."""
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout_s)
        self.signer = signer
        self.chain_id = chain_id

    def after(self, request_id: int, limit: int) -> list[ServedRecord]:
        """Records after ``request_id``; ``ServedSourceError`` when the server does not answer properly."""
        try:
            headers = {}
            if self.signer is not None and self.chain_id is not None:
                headers = served_query_headers(self.signer, self.chain_id, request_id, limit)
            response = self.client.get(
                f"{self.url}/v1/served", params={"after": request_id, "limit": limit}, headers=headers
            )
            response.raise_for_status()
            return [ServedRecord.from_dict(r) for r in response.json()["records"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ServedSourceError(f"cannot read served records from {self.url}: {exc}") from exc

    def __repr__(self) -> str:
        return f"HttpServedRecords({self.url!r})"


def open_source(spec: str, signer: LocalAccount | None = None, chain_id: int | None = None) -> ServedRecords:
    """``http(s)://...`` -> ``HttpServedRecords`` (queries signed by ``signer``); anything else is a path to a
    ``ServedRecordStore`` file."""
    if spec.startswith(("http://", "https://")):
        return HttpServedRecords(spec, signer=signer, chain_id=chain_id)
    return StoreServedRecords(Path(spec))
