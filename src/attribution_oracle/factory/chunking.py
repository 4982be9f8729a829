"""Deterministic tokenisation, chunking, held-out split and sequence packing.

Rule (recorded in every manifest as ``CHUNKING``): each document's bytes are decoded as UTF-8 (invalid
bytes replaced), tokenised without special tokens, followed by the end-of-text token, and cut into
consecutive chunks of at most ``seq_len`` tokens; a trailing piece of fewer than 2 tokens is dropped (it
has nothing to predict). A chunk never spans two contributions, so every chunk (and every row of the
gradient index) belongs to exactly one contribution. Chunk keys are ``"<contribution id>#<chunk index>"``.

Packing: chunks are packed into rows of at most ``seq_len`` tokens (first-fit decreasing by length, ties by
training order). Inside a row each chunk attends only to itself (block-diagonal causal mask) and restarts its
positions at 0, so a packed row's loss is exactly the sum of its chunks' losses: no padding is computed,
and the per-chunk gradients the attribution index uses are the ones the optimiser saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attribution_oracle.factory.fetch import Document

__all__ = [
    "CHUNKING",
    "Chunk",
    "example_batch",
    "pack_rows",
    "packed_batch",
    "split_eval",
    "tokenize_documents",
]

CHUNKING = (
    "utf-8 decode (errors=replace); tokenizer(text, add_special_tokens=False) + [eos]; consecutive chunks of "
    "at most seq_len tokens, a trailing piece under 2 tokens dropped; packed first-fit decreasing into rows of "
    "seq_len with a block-diagonal causal mask and per-chunk positions"
)
IGNORE = -100


@dataclass(frozen=True)
class Chunk:
    """A piece of one contribution's tokens."""

    contribution: str
    index: int
    tokens: tuple[int, ...]

    @property
    def key(self) -> str:
        """``"<contribution id>#<chunk index>"``."""
        return f"{self.contribution}#{self.index}"


def tokenize_documents(documents: Sequence[Document], tokenizer, seq_len: int) -> list[Chunk]:
    """Chunks of every document, in document order (see the module docstring for the rule)."""
    if seq_len < 2:
        raise ValueError("seq_len must be at least 2")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-text token")
    chunks: list[Chunk] = []
    for doc in documents:
        text = doc.data.decode("utf-8", errors="replace")
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [int(eos)]
        for index, start in enumerate(range(0, len(ids), seq_len)):
            piece = ids[start : start + seq_len]
            if len(piece) >= 2:
                chunks.append(Chunk(doc.key, index, tuple(int(t) for t in piece)))
    return chunks


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def split_eval(chunks: Sequence[Chunk], fraction: float, seed: int) -> tuple[list[Chunk], list[Chunk]]:
    """Split into (train, held-out): the ``round(fraction * n)`` chunks with the smallest seeded hash of their
    key are held out (at least one when ``fraction > 0`` and there are two chunks or more; never all).
    Both lists keep training order."""
    if not 0 <= fraction < 1:
        raise ValueError("the held-out fraction must be in [0, 1)")
    n = len(chunks)
    n_eval = 0 if fraction == 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    held = set(sorted(range(n), key=lambda i: _rank(seed, chunks[i].key))[:n_eval])
    return [c for i, c in enumerate(chunks) if i not in held], [c for i, c in enumerate(chunks) if i in held]


def pack_rows(chunks: Sequence[Chunk], seq_len: int) -> list[list[int]]:
    """Indices of ``chunks`` grouped into rows of at most ``seq_len`` tokens (first-fit decreasing)."""
    order = sorted(range(len(chunks)), key=lambda i: (-len(chunks[i].tokens), i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        size = len(chunks[i].tokens)
        for r, free in enumerate(room):
            if free >= size:
                rows[r].append(i)
                room[r] -= size
                break
        else:
            rows.append([i])
            room.append(seq_len - size)
    return [sorted(row) for row in rows]


def packed_batch(rows: Sequence[Sequence[Chunk]], pad_id: int, dtype: torch.dtype = torch.float32) -> dict:
    """Tensors for one packed batch: ``input_ids``, ``position_ids``, a 4D additive ``attention_mask``
    (block-diagonal causal) and ``targets`` (next token, or -100 across chunk boundaries and padding)."""
    width = max(sum(len(c.tokens) for c in row) for row in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)
    targets = torch.full((n, width), IGNORE, dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for s, chunk in enumerate(row):
            size = len(chunk.tokens)
            tokens = torch.tensor(chunk.tokens, dtype=torch.long)
            input_ids[b, at : at + size] = tokens
            positions[b, at : at + size] = torch.arange(size)
            segment[b, at : at + size] = s
            targets[b, at : at + size - 1] = tokens[1:]
            at += size
        # padding: each position its own segment, so no query row is fully masked
        segment[b, at:] = torch.arange(len(row), len(row) + width - at)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = (segment.unsqueeze(2) == segment.unsqueeze(1)) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)
    return {"input_ids": input_ids, "position_ids": positions, "attention_mask": mask, "targets": targets}


def example_batch(chunks: Sequence[Chunk], pad_id: int) -> dict[str, torch.Tensor]:
    """One example per chunk, right-padded: ``{"input_ids", "attention_mask", "labels"}`` (LanguageModelTask)."""
    width = max(len(c.tokens) for c in chunks)
    input_ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(chunks), width), dtype=torch.long)
    for i, chunk in enumerate(chunks):
        input_ids[i, : len(chunk.tokens)] = torch.tensor(chunk.tokens, dtype=torch.long)
        attention[i, : len(chunk.tokens)] = 1
    labels = input_ids.masked_fill(attention == 0, IGNORE)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
