"""Retrieval for ``serve --rag``: the contributions a model's answers may cite, from its own verified training data.

The retriever is the model's lexical index (``attribution.lexical.LexicalIndex``, BM25 over the trained
contributions' texts, built by the ModelFactory at training time from the blobs it verified against the Datanet
versions' Merkle roots); the texts come from the same content-addressed blobs, each checked against the sha256 the
manifest records. ``retrieve`` returns the ``k`` best contributions for a prompt (ties by contribution id), and
``augment`` puts them in front of the user's prompt. The served record keeps the retrieved ids so the oracle can pay
them (``attribution.retrieval.rag_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attribution_oracle.attribution.lexical import LexicalIndex
from attribution_oracle.errors import UserError
from attribution_oracle.store.blobs import BlobStore

__all__ = ["Retrieved", "Retriever", "RetrievalError"]


class RetrievalError(UserError):
    """A model that cannot serve with retrieval (no lexical index in its manifest)."""


@dataclass(frozen=True)
class Retrieved:
    """One retrieved contribution."""

    contribution_id: str
    score: float
    text: str


class Retriever:
    """BM25 retrieval over one trained model's contributions."""

    def __init__(self, index: LexicalIndex, texts: dict[str, str]) -> None:
        """Use ``from_manifest``."""
        self.index = index
        self.texts = texts

    @classmethod
    def from_manifest(cls, store: BlobStore, manifest: dict, cache_dir: Path) -> Retriever:
        """Restore the model's lexical index from the store and read every indexed contribution's verified text."""
        from attribution_oracle.factory.artefacts import restore_directory

        part = manifest.get("attribution", {}).get("lexical_index")
        if part is None:
            raise RetrievalError("this model was trained without a lexical index: retrain it to serve with --rag")
        index = LexicalIndex.open(restore_directory(store, part["files"], Path(cache_dir) / "lexical"))
        digests = {str(c["contribution_id"]): c["sha256"] for c in manifest["contributions"]}
        texts = {cid: store.get(digests[cid]).decode("utf-8", errors="replace") for cid in index.ids}
        return cls(index, texts)

    def retrieve(self, prompt: str, k: int = 2) -> list[Retrieved]:
        """The ``k`` best contributions for ``prompt`` (positive BM25 only), best first, ties by id."""
        if k < 1:
            return []
        scores = self.index.scores(prompt)
        best = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
        return [Retrieved(cid, scores[cid], self.texts[cid]) for cid in best]

    @staticmethod
    def augment(prompt: str, retrieved: list[Retrieved]) -> str:
        """The user's prompt preceded by the retrieved passages (unchanged when nothing was retrieved)."""
        if not retrieved:
            return prompt
        context = "\n\n".join(f"[{r.contribution_id}] {r.text.strip()}" for r in retrieved)
        return f"Context:\n{context}\n\nQuestion: {prompt}"
