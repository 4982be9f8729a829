"""Retrieval for ``serve --rag``: the contributions a model's answers may cite, from its own verified training data.

The retriever is the model's lexical index (``attribution.lexical.LexicalIndex``, BM25 over the trained
contributions' texts, built by the ModelFactory at training time from the blobs it verified against the Datanet
versions' Merkle roots); the texts come from the same content-addressed blobs, each checked against the sha256 the
manifest records. The model's manifest is the one its on-chain ``metadataURI`` names (``sha256://<digest>``), so the
server and every oracle node rebuild the same retriever from public inputs.

The rule (pure functions, so an oracle node re-derives exactly what the server did):

- *Query* (``retrieval_query``): the paid prompt; for a rendered chat prompt (ChatML, ``<|im_start|>``) the
  contents of its user turns joined by newlines, so the template's markers and system text do not retrieve.
- *Retrieve* (``Retriever.retrieve``): the ``k`` best positive BM25 scores, best first, ties by contribution id;
  ``k`` is the server's ``--top-k`` (``DEFAULT_TOP_K``, at most ``MAX_TOP_K``).
- *Context* (``augment``): each passage is ``[<contribution id>] <text>`` (text stripped, cut to
  ``MAX_PASSAGE_CHARS`` characters), passages joined by blank lines. A rendered chat prompt gets them as a system
  turn in front, ``<|im_start|>system\\n{CONTEXT_HEADER}\\n\\n{passages}<|im_end|>\\n`` + prompt; a plain completion
  prompt becomes ``Context:\\n{passages}\\n\\nQuestion: {prompt}``. Nothing retrieved leaves the prompt unchanged.

The model reads (and the served record's ``prompt_token_ids`` hold) the tokenization of the augmented prompt; the
record's ``prompt`` stays the paid prompt (its sha256 is the payment's ``inputHash``) and its ``retrieved`` field
lists the retrieved contribution ids in rank order, which the oracle pays (``attribution.rag_shares.rag_scores``)
and commits in the report's attribution leaf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from attribution_oracle.attribution.lexical import LexicalIndex
from attribution_oracle.errors import UserError
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import CONTENT_URI_SCHEME

__all__ = [
    "CONTEXT_HEADER",
    "DEFAULT_TOP_K",
    "MAX_PASSAGE_CHARS",
    "MAX_TOP_K",
    "Retrieved",
    "RetrievalError",
    "Retriever",
    "augment",
    "check_top_k",
    "retrieval_query",
    "retriever_for_model",
]

DEFAULT_TOP_K = 2
MAX_TOP_K = 8
MAX_PASSAGE_CHARS = 1_000
CONTEXT_HEADER = "Answer using these sources; cite them by their [id]."
_CHAT_START = "<|im_start|>"
_USER_TURN = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.DOTALL)


class RetrievalError(UserError):
    """A model that cannot serve with retrieval (no lexical index in its manifest), or a bad top-k."""


@dataclass(frozen=True)
class Retrieved:
    """One retrieved contribution."""

    contribution_id: str
    score: float
    text: str


def check_top_k(k: int) -> int:
    """``k`` if it lies in ``1..MAX_TOP_K``, else ``RetrievalError``."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP_K:
        raise RetrievalError(f"top-k must be a whole number from 1 to {MAX_TOP_K}, got {k!r}")
    return k


def retrieval_query(prompt: str) -> str:
    """What BM25 searches with: the user turns of a rendered chat prompt, else the prompt itself."""
    if prompt.startswith(_CHAT_START):
        return "\n".join(_USER_TURN.findall(prompt))
    return prompt


def _passage(item: Retrieved) -> str:
    return f"[{item.contribution_id}] {item.text.strip()[:MAX_PASSAGE_CHARS]}"


def augment(prompt: str, retrieved: list[Retrieved]) -> str:
    """The prompt the model reads: the retrieved passages put in front of ``prompt`` (see the module docstring)."""
    if not retrieved:
        return prompt
    context = "\n\n".join(_passage(r) for r in retrieved)
    if prompt.startswith(_CHAT_START):
        return f"{_CHAT_START}system\n{CONTEXT_HEADER}\n\n{context}<|im_end|>\n{prompt}"
    return f"Context:\n{context}\n\nQuestion: {prompt}"


class Retriever:
    """BM25 retrieval over one trained model's contributions."""

    def __init__(self, index: LexicalIndex, texts: dict[str, str]) -> None:
        """Use ``from_manifest`` or ``retriever_for_model``."""
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

    def retrieve(self, prompt: str, k: int = DEFAULT_TOP_K) -> list[Retrieved]:
        """The ``k`` best contributions for ``prompt``'s query (positive BM25 only), best first, ties by id."""
        if k < 1:
            return []
        scores = self.index.scores(retrieval_query(prompt))
        best = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
        return [Retrieved(cid, scores[cid], self.texts[cid]) for cid in best]

    def lookup(self, contribution_ids: list[str] | tuple[str, ...]) -> list[Retrieved]:
        """The indexed contributions ``contribution_ids`` in that order (``KeyError`` for one not indexed)."""
        return [Retrieved(cid, 0.0, self.texts[cid]) for cid in contribution_ids]

    @staticmethod
    def augment(prompt: str, retrieved: list[Retrieved]) -> str:
        """``augment`` (kept as a static method for callers holding a retriever)."""
        return augment(prompt, retrieved)


def retriever_for_model(
    client, deployment, store: BlobStore, model_id: int, cache_dir: Path | None = None
) -> Retriever:
    """The retriever of a registered model, from the manifest its on-chain ``metadataURI`` names.

    ``RetrievalError`` (a fact of the public inputs, the same for everyone) when the metadata URI is not a manifest
    URI or the manifest has no lexical index; a manifest missing from this store raises the store's error."""
    from attribution_oracle.chain.reads import ChainReader
    from attribution_oracle.factory.manifest import load_manifest
    from attribution_oracle.models.base import default_cache_dir

    uri = ChainReader(client, deployment).model(model_id).metadata_uri
    if not uri.startswith(CONTENT_URI_SCHEME):
        raise RetrievalError(
            f"model {model_id} cannot serve with --rag: its metadataURI {uri!r} is not a ModelFactory manifest "
            "(sha256://<digest>), so it has no lexical index"
        )
    digest = uri.removeprefix(CONTENT_URI_SCHEME)
    manifest = load_manifest(store, digest)  # a missing or bad blob is a store problem (ManifestError), not a rule
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir().parent / "retrievers"
    try:
        return Retriever.from_manifest(store, manifest, root / digest)
    except RetrievalError as exc:
        raise RetrievalError(f"model {model_id} cannot serve with --rag: {exc}") from None
