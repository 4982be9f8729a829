"""Copy audits of a Datanet's contributions (the curator's tool before approving, or of a published version).

Pending mode: each pending contribution is compared with every approved one *and* with every pending one
submitted before it, so two near-identical pending files cannot both pass. Version mode: each contribution of
the version is compared with those approved before it. A byte counts as copied when a passage of at least
``min_len`` bytes around it occurs verbatim in an earlier contribution (``attribution.copies.find_copies``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attribution_oracle.datanets.versions import read_version_manifest
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.digests import digest_of_uri
from attribution_oracle.store.store_errors import BlobNotFoundError

__all__ = ["AuditResult", "audit_datanet"]


@dataclass
class AuditResult:
    """What an audit found: one ``(contribution, CopyReport)`` per audited contribution, most copied first."""

    datanet_id: int
    version: int | None
    min_len: int
    threshold: float
    compared: int  # approved contributions compared against
    compared_pending: int  # pending contributions also compared against (pending mode)
    missing: list[int] = field(default_factory=list)
    reports: list[tuple[Any, Any]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``--json`` form."""
        return {
            "datanetId": self.datanet_id,
            "mode": "version" if self.version is not None else "pending",
            "version": self.version,
            "minLen": self.min_len,
            "threshold": self.threshold,
            "compared": self.compared,
            "comparedPending": self.compared_pending,
            "missingBlobs": self.missing,
            "contributions": [
                {"id": _get(c, "id"), "contributor": _get(c, "contributor"), **r.to_dict()} for c, r in self.reports
            ],
        }


def _get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def _text(store: BlobStore, digest: str) -> str | None:
    try:
        return store.get(digest).decode("utf-8", errors="replace")
    except BlobNotFoundError:
        return None


def audit_datanet(
    catalog: Catalog,
    store: BlobStore,
    datanet_id: int,
    version: int | None = None,
    min_len: int = 32,
    threshold: float = 0.5,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> AuditResult:
    """Audit pending contributions (``version`` None) or a published version's; blobs not held locally are skipped."""
    from attribution_oracle.attribution.copies import find_copies
    from attribution_oracle.attribution.spans import SpanIndex

    by_hash = {_get(c, "content_hash"): c for c in catalog.list_contributions(datanet_id)}
    if version is not None:
        record = catalog.get_version(datanet_id, version)
        manifest = read_version_manifest(store.get(digest_of_uri(_get(record, "manifest_uri"))))
        sources = [by_hash[h.removeprefix("0x")] for h in manifest["contentHashes"]]
        candidates = sources
        approved = len(sources)
    else:
        approved_list = [by_hash[h] for h in catalog.approved_hashes(datanet_id)]
        candidates = sorted(
            (c for c in by_hash.values() if _get(c, "status") == "pending"), key=lambda c: _get(c, "id")
        )
        sources = approved_list + candidates  # approved first, then pending in submission order
        approved = len(approved_list)
    texts = {_get(c, "id"): _text(store, _get(c, "content_hash")) for c in {*sources, *candidates}}
    missing = sorted(cid for cid, text in texts.items() if text is None)
    result = AuditResult(datanet_id, version, min_len, threshold, 0, 0, missing)
    if on_start is not None:
        on_start(len(candidates))
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        indexed = [c for c in sources if texts[_get(c, "id")] is not None]
        documents = [(str(_get(c, "id")), texts[_get(c, "id")]) for c in indexed]
        approved_ids = {_get(c, "id") for c in sources[:approved]}
        result.compared = sum(1 for c in indexed if _get(c, "id") in approved_ids)
        result.compared_pending = len(indexed) - result.compared
        index = SpanIndex.build_text(Path(tmp) / "index", documents)
        for c in sorted(candidates, key=lambda c: _get(c, "id")):
            cid = _get(c, "id")
            if on_progress is not None:
                on_progress()
            if texts[cid] is None:
                continue
            # version mode: sources approved before it; pending mode: approved ones and pending ones sent earlier
            report = find_copies(index, texts[cid], min_len=min_len, before=str(cid), threshold=threshold)
            result.reports.append((c, report))
    result.reports.sort(key=lambda item: (-item[1].coverage, _get(item[0], "id")))
    return result
