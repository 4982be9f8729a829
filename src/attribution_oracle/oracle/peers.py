"""Talk to peer nodes over HTTP: push and pull signatures, fetch reports by URI. Failures are not fatal."""

from __future__ import annotations

import httpx

from attribution_oracle.oracle.logs import log
from attribution_oracle.store.digests import CONTENT_URI_SCHEME

TIMEOUT_S = 2.0


class Peers:
    """The other nodes of the oracle set, by base URL."""

    def __init__(self, urls: list[str], timeout_s: float = TIMEOUT_S) -> None:
        """``urls``: each peer's ``http://host:port``."""
        self.urls = [u.rstrip("/") for u in urls]
        self.client = httpx.Client(timeout=timeout_s)

    def push(self, signature: dict) -> int:
        """POST a signature to every peer; returns how many accepted it."""
        accepted = 0
        for url in self.urls:
            try:
                accepted += self.client.post(f"{url}/v1/signatures", json=signature).status_code == 200
            except httpx.HTTPError as exc:
                log("peer unreachable", peer=url, error=type(exc).__name__)
        return accepted

    def pull(self, epoch: int) -> list[dict]:
        """Every signature the peers hold for ``epoch``."""
        found: list[dict] = []
        for url in self.urls:
            try:
                response = self.client.get(f"{url}/v1/signatures", params={"epoch": epoch})
                if response.status_code == 200:
                    found += response.json()["signatures"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue
        return found

    def report(self, uri: str) -> bytes | None:
        """A report's JSON from the first peer that has it (the caller checks the digest)."""
        digest = uri.removeprefix(CONTENT_URI_SCHEME)
        for url in self.urls:
            try:
                response = self.client.get(f"{url}/v1/reports/{digest}")
                if response.status_code == 200:
                    return response.content
            except httpx.HTTPError:
                continue
        return None

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
