"""Copy-audit verdicts of a Datanet's contributions (the curator's ``datanet audit``, shown on its page).

Approved contributions are indexed in approval order; each approved one is compared with those approved
before it, each pending one with every approved one (``attribution.copies.find_copies``). Verdicts are
cached per Datanet until its contributions change.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog_records import Contribution
from attribution_oracle.store.store_errors import StoreError


@dataclass(frozen=True)
class Verdict:
    """One contribution's audit: how much of it occurs in earlier contributions, and where."""

    contribution_id: int
    verdict: str
    coverage: float
    longest_run: int
    sources: tuple[tuple[str, int], ...]


class Audits:
    """Cached audit verdicts per Datanet."""

    def __init__(self, store: BlobStore | None) -> None:
        """Contribution texts are read from ``store``."""
        self.store = store
        self._cache: dict[int, tuple[tuple, list[Verdict]]] = {}
        self._lock = threading.Lock()

    def _text(self, content_hash: str) -> str | None:
        if self.store is None:
            return None
        try:
            return self.store.get(content_hash).decode("utf-8", errors="replace")
        except (StoreError, OSError):
            return None

    def verdicts(self, datanet_id: int, contributions: list[Contribution]) -> list[Verdict]:
        """Verdicts of the approved and pending contributions whose text the store holds."""
        key = tuple((c.id, c.status) for c in contributions)
        with self._lock:
            cached = self._cache.get(datanet_id)
            if cached is not None and cached[0] == key:
                return cached[1]
        from attribution_oracle.attribution.copies import find_copies
        from attribution_oracle.attribution.spans import SpanIndex

        approved = sorted((c for c in contributions if c.status == "approved"), key=lambda c: c.approval_index)
        pending = [c for c in contributions if c.status == "pending"]
        texts = {c.id: self._text(c.content_hash) for c in (*approved, *pending)}
        documents = [(str(c.id), texts[c.id]) for c in approved if texts[c.id]]
        verdicts: list[Verdict] = []
        if documents:
            with tempfile.TemporaryDirectory(prefix="explorer-audit-") as tmp:
                index = SpanIndex.build_text(Path(tmp) / "index", documents)
                for c in (*approved, *pending):
                    if not texts[c.id]:
                        continue
                    before = str(c.id) if c.status == "approved" else None
                    report = find_copies(index, texts[c.id], before=before)
                    verdicts.append(
                        Verdict(c.id, report.verdict, report.coverage, report.longest_run, tuple(report.sources[:3]))
                    )
        with self._lock:
            self._cache[datanet_id] = (key, verdicts)
        return verdicts
