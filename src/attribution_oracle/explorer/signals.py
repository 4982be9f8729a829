"""Attribution evidence of one inference, re-derived from the model's stored artefacts.

Reports keep each inference's combined scores, not where in the output the matching spans are. The
explorer derives those with the library code from the model's provenance manifest: the span index is
restored from the content store (``factory.artefacts.restore_directory``, as ``factory.scorer`` does) and
queried with ``SpanIndex.maximal_spans``; the gradient and span signals come from the model's
``factory.scorer.ModelScorer``. Both are cached per model; nothing is written outside ``cache_dir``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution_oracle.explorer.ledger import Inference
from attribution_oracle.store.blobs import BlobStore

MAX_SPAN_DOCUMENTS = 10


@dataclass(frozen=True)
class SpanView:
    """A maximal span of the output (token positions) and the contributions that hold it."""

    index: int
    start: int
    end: int
    count: int
    documents: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Segment:
    """A run of output text covered by the same set of spans (empty set: not attributed)."""

    text: str
    spans: tuple[int, ...]


@dataclass(frozen=True)
class SpanEvidence:
    """The output cut into highlighted segments, and the spans behind them."""

    segments: list[Segment]
    spans: list[SpanView]
    min_len: int


class _ModelArtefacts:
    """One model's manifest, span index and decoder, loaded once."""

    def __init__(self, store: BlobStore, manifest_digest: str, cache_dir: Path) -> None:
        from attribution_oracle.factory.artefacts import restore_directory
        from attribution_oracle.factory.manifest import load_manifest

        self.digest = manifest_digest
        self.manifest = load_manifest(store, manifest_digest)
        self.span_index = None
        self.min_len = 0
        span = self.manifest.get("attribution", {}).get("span_index")
        if span is not None:
            from attribution_oracle.attribution.spans import SpanIndex

            self.span_index = SpanIndex.open(
                restore_directory(store, span["files"], cache_dir / manifest_digest / "span")
            )
            self.min_len = int(span["min_len"])
        self._tokenizer = None
        self._scorer = None
        self._lock = threading.Lock()

    def decode(self, token_ids: list[int]) -> str:
        """Text of a token slice with the model's own tokenizer."""
        if self._tokenizer is None:
            spec = self.manifest["base_model"]["spec"]
            if str(spec).startswith("tiny"):
                from attribution_oracle.models.base import byte_level_tokenizer

                self._tokenizer = byte_level_tokenizer()
            else:
                from attribution_oracle.models import load_base_model

                self._tokenizer = load_base_model(spec).tokenizer
        return self._tokenizer.decode(token_ids, skip_special_tokens=False)

    def scorer(self, store: BlobStore, cache_dir: Path):
        """The model's scorer (loaded on first use; it holds the model and its gradient index)."""
        with self._lock:
            if self._scorer is None:
                from attribution_oracle.factory.scorer import load_model_scorer

                self._scorer = load_model_scorer(store, self.digest, cache_dir=cache_dir / "scorers")
            return self._scorer


class Signals:
    """Span evidence and per-signal scores of inferences, per model (see the module docstring)."""

    def __init__(self, store: BlobStore | None, cache_dir: Path) -> None:
        """``cache_dir`` receives restored index files (a private cache, never the content store)."""
        self.store = store
        self.cache_dir = Path(cache_dir)
        self._models: dict[str, _ModelArtefacts | Exception] = {}
        self._evidence: dict[int, SpanEvidence] = {}
        self._scores: dict[int, dict[str, dict[str, float]]] = {}
        self._lock = threading.Lock()

    def artefacts(self, metadata_uri: str) -> _ModelArtefacts | None:
        """A model's artefacts from its on-chain ``metadataURI`` (None when it has no readable manifest)."""
        if self.store is None or not metadata_uri.startswith("sha256://"):
            return None
        digest = metadata_uri.removeprefix("sha256://")
        with self._lock:
            if digest not in self._models:
                try:
                    self._models[digest] = _ModelArtefacts(self.store, digest, self.cache_dir)
                except Exception as exc:  # noqa: BLE001 - a missing or foreign manifest just means no evidence
                    self._models[digest] = exc
            found = self._models[digest]
        return None if isinstance(found, Exception) else found

    def manifest(self, metadata_uri: str) -> dict | None:
        """A model's provenance manifest, if the content store holds it."""
        found = self.artefacts(metadata_uri)
        return None if found is None else found.manifest

    def evidence(self, inference: Inference, metadata_uri: str) -> SpanEvidence | None:
        """The output's maximal spans (at least the index's ``min_len`` tokens) and highlighted segments."""
        if inference.request_id in self._evidence:
            return self._evidence[inference.request_id]
        found = self.artefacts(metadata_uri)
        tokens = list(inference.output_token_ids)
        if found is None or found.span_index is None or not tokens:
            return None
        raw = found.span_index.maximal_spans(tokens, min_len=found.min_len, max_documents=MAX_SPAN_DOCUMENTS)
        spans = [
            SpanView(i, s.start, s.end, s.count, tuple(s.documents), found.decode(tokens[s.start : s.end]))
            for i, s in enumerate(raw)
        ]
        cover: list[tuple[int, ...]] = [()] * len(tokens)
        for span in spans:
            for position in range(span.start, span.end):
                cover[position] = (*cover[position], span.index)
        segments: list[Segment] = []
        start = 0
        for position in range(1, len(tokens) + 1):
            if position == len(tokens) or cover[position] != cover[start]:
                segments.append(Segment(found.decode(tokens[start:position]), cover[start]))
                start = position
        evidence = SpanEvidence(segments, spans, found.min_len)
        self._evidence[inference.request_id] = evidence
        return evidence

    def scores(self, inference: Inference, metadata_uri: str) -> dict[str, dict[str, float]]:
        """``{"gradient": {...}, "span": {...}, "lexical": {...}}`` contribution scores of the inference from the
        model's scorer: the sides its manifest's rule combines, computed as an oracle node computes them (the span side
        sees the prompt too; a side whose weight is 0 is empty)."""
        if inference.request_id in self._scores:
            return self._scores[inference.request_id]
        found = self.artefacts(metadata_uri)
        if found is None or self.store is None or not inference.output_token_ids:
            return {}
        scorer = found.scorer(self.store, self.cache_dir)
        prompt, output = list(inference.prompt_token_ids), list(inference.output_token_ids)
        result: dict[str, dict[str, Any]] = {}
        if hasattr(scorer, "signals"):  # the factory scorer: every side as the oracle combines it, copies folded
            sides = scorer.signals(prompt, output)
        else:
            sides = {}
            if hasattr(scorer, "gradient_scores"):
                sides["gradient"] = scorer.gradient_scores(prompt, output)
            if hasattr(scorer, "span_scores"):
                sides["span"] = scorer.span_scores(output, prompt)
        for kind, scores in sides.items():
            result[kind] = {str(k): float(v) for k, v in scores.items()}
        self._scores[inference.request_id] = result
        return result
