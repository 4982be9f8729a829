"""A suffix-array index over a corpus of contributions, persisted as raw memory-mapped files.

Layout of an index directory (written to a temporary sibling directory, then renamed into place)::

    manifest.json   format, token dtype, vocabulary size, separator, sizes, pointer width, bucket depth
    tokens.bin      the corpus: doc0 SEP doc1 SEP ... docN-1 SEP, tokens big-endian (u8, >u2 or >u4)
    sa.bin          the suffix array, each pointer little-endian in the fewest bytes that hold the corpus
                    length (3 bytes below 16M tokens, 4 below 4G, 5 below 1T: what infini-gram does)
    buckets.bin     start rank of every k-token prefix in the suffix array (little-endian u4, or u8 past 4G
                    tokens; k = 0, 1 or 2, chosen so the table has at most one entry per 2048 tokens): it replaces
                    the first binary-search steps, and its differences are the unigram counts
    ids.txt         the contribution id of each document, in index order, one per line

Nothing else is stored: document offsets are the separator positions (found once, on the first query that needs
them) and unigram counts come from the bucket table, so the index costs ``1 + pointer width`` bytes per token
plus a few bytes per document.

The separator is a token id that no query may contain (``vocab_size`` in token mode; byte 0xFF in text
mode, which UTF-8 never produces), so no match can cross a document boundary. Tokens are stored big-endian so
that comparing the raw bytes of two token strings orders them like the token sequences themselves: every
search is a binary search comparing ``bytes`` slices of the memory map, which runs at C speed per step.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydivsufsort import divsufsort

from attribution_oracle.errors import UserError

FORMAT = "attribution-oracle/span-index@1"
TEXT_SEPARATOR = 0xFF  # never appears in UTF-8
_BUCKET_FRACTION = 2048


class SpanIndexError(UserError):
    """A span index that cannot be built, opened or queried as asked."""


def _token_dtype(max_token: int) -> np.dtype:
    if max_token <= 0xFF:
        return np.dtype("u1")
    if max_token <= 0xFFFF:
        return np.dtype(">u2")
    if max_token <= 0xFFFFFFFF:
        return np.dtype(">u4")
    raise SpanIndexError(f"vocabulary of {max_token} tokens does not fit in 32 bits")


def _pointer_width(n: int) -> int:
    """Fewest bytes whose pointers address every position of a corpus of ``n`` tokens."""
    return max(1, (max(n - 1, 1).bit_length() + 7) // 8)


def _bucket_depth(alphabet: int, n: int) -> int:
    depth = 0
    while depth < 2 and alphabet ** (depth + 1) + 1 <= n // _BUCKET_FRACTION:
        depth += 1
    return depth


def _write_raw(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        array.tofile(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _sorted_suffixes(corpus: np.ndarray) -> np.ndarray:
    """The suffix array of ``corpus`` (native unsigned ints) via libdivsufsort.

    For wider tokens pydivsufsort sorts the big-endian bytes and keeps the aligned suffixes, which is the
    order of the token sequences.
    """
    return np.asarray(divsufsort(corpus))


def _pack_pointers(sa: np.ndarray, width: int) -> np.ndarray:
    """Suffix-array pointers as little-endian ``width``-byte integers."""
    if width == 4:
        return sa.astype("<u4")
    wide = sa.astype("<u8")
    return np.ascontiguousarray(wide.view(np.uint8).reshape(-1, 8)[:, :width])


class StoredSpanIndex:
    """Suffix-array index of documents (contribution id, tokens): exact counts and maximal matching spans."""

    def __init__(self, path: Path) -> None:
        """Open an index directory lazily: files are memory-mapped on first use (see ``open``)."""
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise SpanIndexError(f"no span index at {self.path} (manifest.json missing)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise SpanIndexError(f"unreadable span index manifest at {manifest_path}: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise SpanIndexError(f"{manifest_path} is not a {FORMAT} manifest")
        self.manifest: dict[str, Any] = manifest
        self.mode: str = manifest["mode"]
        self.vocab_size: int = manifest["vocab_size"]
        self.separator: int = manifest["separator"]
        self.dtype = np.dtype(manifest["token_dtype"])
        self.n_positions: int = manifest["n_positions"]
        self.n_tokens: int = manifest["n_tokens"]
        self.width: int = manifest["pointer_width"]
        self.depth: int = manifest["bucket_depth"]
        self.alphabet: int = self.separator + 1
        self._loaded = False

    # ------------------------------------------------------------------ build

    @classmethod
    def open(cls, path: Path) -> StoredSpanIndex:
        """Open an index built by ``build``/``build_text`` (cheap: nothing is read until the first query)."""
        return cls(path)

    @classmethod
    def build(
        cls,
        path: Path,
        documents: Sequence[tuple[str, Sequence[int] | np.ndarray]],
        vocab_size: int,
        *,
        overwrite: bool = True,
    ) -> StoredSpanIndex:
        """Index ``documents`` (contribution id, token ids in ``[0, vocab_size)``) in the given order.

        The order matters: it is the approval order used by the copies rule (earliest document first).
        The separator is token ``vocab_size``; the smallest token dtype that holds it is used.
        """
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise SpanIndexError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        dtype = _token_dtype(vocab_size)
        arrays = []
        for doc_id, tokens in documents:
            array = np.asarray(tokens)
            if array.size and (array.ndim != 1 or not np.issubdtype(array.dtype, np.integer)):
                raise SpanIndexError(f"document {doc_id!r}: tokens must be a 1-D sequence of integers")
            if array.size and (int(array.min()) < 0 or int(array.max()) >= vocab_size):
                raise SpanIndexError(f"document {doc_id!r}: token ids must lie in [0, {vocab_size})")
            arrays.append(array)
        return cls._write(path, [d for d, _ in documents], arrays, dtype, vocab_size, vocab_size, "tokens", overwrite)

    @classmethod
    def build_text(cls, path: Path, documents: Sequence[tuple[str, str]], *, overwrite: bool = True) -> StoredSpanIndex:
        """Index texts in byte mode: tokens are the UTF-8 bytes (u8), the separator is 0xFF."""
        arrays = []
        for doc_id, text in documents:
            if not isinstance(text, str):
                raise SpanIndexError(f"document {doc_id!r}: text mode needs str, got {type(text).__name__}")
            arrays.append(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
        ids = [d for d, _ in documents]
        return cls._write(path, ids, arrays, np.dtype("u1"), 256, TEXT_SEPARATOR, "text", overwrite)

    @classmethod
    def _write(
        cls,
        path: Path,
        ids: list[str],
        arrays: list[np.ndarray],
        dtype: np.dtype,
        vocab_size: int,
        separator: int,
        mode: str,
        overwrite: bool,
    ) -> StoredSpanIndex:
        path = Path(path)
        if any(not isinstance(i, str) or "\n" in i or "\r" in i for i in ids):
            raise SpanIndexError("contribution ids must be strings without line breaks")
        if len(set(ids)) != len(ids):
            raise SpanIndexError("contribution ids must be unique")
        if path.exists() and not overwrite:
            raise SpanIndexError(f"{path} already exists")
        lengths = np.array([a.size for a in arrays], dtype=np.int64)
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(lengths + 1, out=offsets[1:])
        n = int(offsets[-1])
        native = np.dtype(dtype).newbyteorder("=")
        corpus = np.full(n, separator, dtype=native)
        for start, array in zip(offsets[:-1], arrays, strict=True):
            corpus[start : start + array.size] = array
        width = _pointer_width(n)
        depth = _bucket_depth(separator + 1, n)

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            _write_raw(tmp / "tokens.bin", corpus.astype(dtype, copy=False))
            if n:
                sa = _sorted_suffixes(corpus)
                _write_raw(tmp / "sa.bin", _pack_pointers(sa, width))
                buckets = _buckets(corpus, sa, depth, separator + 1)
                del sa
            else:
                (tmp / "sa.bin").write_bytes(b"")
                buckets = np.zeros(2, dtype=np.uint64)
            _write_raw(tmp / "buckets.bin", buckets.astype(_bucket_dtype(n)))
            (tmp / "ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
            manifest = {
                "format": FORMAT,
                "mode": mode,
                "vocab_size": vocab_size,
                "separator": separator,
                "token_dtype": np.dtype(dtype).str,
                "n_positions": n,
                "n_tokens": int(lengths.sum()),
                "n_documents": len(ids),
                "pointer_width": width,
                "bucket_depth": depth,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path)

    # ------------------------------------------------------------------ files

    def _load(self) -> None:
        if self._loaded:
            return
        self._files = []
        self._tok = self._map("tokens.bin")
        self._sa = self._map("sa.bin")
        self._buckets = memoryview(self._map("buckets.bin")).cast(_bucket_dtype(self.n_positions).char)
        self._offsets: np.ndarray | None = None
        self._unigrams: np.ndarray | None = None
        text = (self.path / "ids.txt").read_text(encoding="utf-8")
        self.ids: list[str] = text.split("\n")[:-1]
        self._step = self.dtype.itemsize
        self._sa4 = memoryview(self._sa).cast("I") if self.width == 4 and len(self._sa) else None
        self._loaded = True

    def _map(self, name: str) -> mmap.mmap | bytes:
        with open(self.path / name, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return b""
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each document in the corpus, then the corpus length (int64; from the separator positions)."""
        self._load()
        if self._offsets is None:
            corpus = np.frombuffer(self._tok, dtype=self.dtype) if self.n_positions else np.zeros(0, self.dtype)
            ends = np.flatnonzero(corpus == self.separator) + 1
            self._offsets = np.concatenate([[0], ends]).astype(np.int64)
        return self._offsets

    @property
    def unigrams(self) -> np.ndarray:
        """Occurrences of every token id in the documents (int64, length ``vocab_size``; separators excluded)."""
        self._load()
        if self._unigrams is None:
            if self.depth:
                per_key = np.diff(np.asarray(self._buckets, dtype=np.int64))
                counts = per_key.reshape(self.alphabet, -1).sum(axis=1)
            else:
                corpus = np.frombuffer(self._tok, dtype=self.dtype) if self.n_positions else np.zeros(0, np.int64)
                counts = np.bincount(corpus.astype(np.int64), minlength=self.alphabet)
            counts = counts.astype(np.int64)
            counts[self.separator] = 0
            self._unigrams = counts[: self.vocab_size]
        return self._unigrams

    @property
    def documents(self) -> list[str]:
        """Contribution ids in index order."""
        self._load()
        return list(self.ids)

    def nbytes(self) -> int:
        """Size of the index on disk (every file of the directory)."""
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    # -------------------------------------------------------------- encoding

    def encode(self, tokens: Sequence[int] | np.ndarray | str) -> bytes:
        """The stored byte form of a query (a str is UTF-8 encoded in text mode); rejects separator ids."""
        self._load()
        if isinstance(tokens, str):
            if self.mode != "text":
                raise SpanIndexError("this index holds token ids; pass token ids, not text")
            return tokens.encode("utf-8")
        if self.dtype.itemsize == 1 and isinstance(tokens, list | tuple | bytes):
            try:  # fast path for byte-sized ids: bytes() checks the 0..255 range in C
                pattern = bytes(tokens)
            except (TypeError, ValueError):
                pattern = None
            if pattern is not None and (not pattern or max(pattern) < min(self.vocab_size, self.separator)):
                return pattern
        array = np.asarray(tokens)
        if array.size == 0:
            return b""
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise SpanIndexError("a query must be a 1-D sequence of integer token ids")
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= self.vocab_size:
            raise SpanIndexError(f"query token ids must lie in [0, {self.vocab_size})")
        if self.separator < self.vocab_size and bool((array == self.separator).any()):
            raise SpanIndexError(f"token {self.separator} is the document separator and cannot be queried")
        return array.astype(self.dtype).tobytes()

    # ---------------------------------------------------------------- search

    def _pointer(self, rank: int) -> int:
        if self._sa4 is not None:
            return self._sa4[rank]
        w = self.width
        return int.from_bytes(self._sa[rank * w : rank * w + w], "little")

    def pointers(self, lo: int, hi: int) -> np.ndarray:
        """Corpus positions of the suffixes ranked ``lo..hi-1`` (int64)."""
        self._load()
        n, w = hi - lo, self.width
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        raw = np.frombuffer(self._sa, dtype=np.uint8, count=n * w, offset=lo * w).reshape(n, w)
        wide = np.zeros((n, 8), dtype=np.uint8)
        wide[:, :w] = raw
        return wide.view("<u8").ravel().astype(np.int64)

    def _bucket(self, pattern: bytes) -> tuple[int, int]:
        """Suffix-array range of the suffixes sharing the first ``min(depth, len)`` tokens of ``pattern``."""
        step, depth = self._step, self.depth
        if depth == 0 or not pattern:
            return 0, self.n_positions
        k = min(depth, len(pattern) // step)
        key = 0
        for i in range(k):
            key = key * self.alphabet + int.from_bytes(pattern[i * step : (i + 1) * step], "big")
        span = self.alphabet ** (depth - k)
        key *= span
        return self._buckets[key], self._buckets[key + span]

    def range(self, pattern: bytes) -> tuple[int, int]:
        """Suffix-array range ``[lo, hi)`` of the suffixes that start with the encoded ``pattern``."""
        self._load()
        lo, hi = self._bucket(pattern)
        if lo >= hi or len(pattern) <= self.depth * self._step:
            return lo, hi
        tok, pointer, s, m = self._tok, self._pointer, self._step, len(pattern)
        upper = hi
        while lo < hi:  # lower bound, narrowing the upper bound's range on the way
            mid = (lo + hi) >> 1
            p = pointer(mid) * s
            x = tok[p : p + m]
            if x < pattern:
                lo = mid + 1
            else:
                if x != pattern:
                    upper = mid
                hi = mid
        first, hi = lo, upper
        while lo < hi:
            mid = (lo + hi) >> 1
            p = pointer(mid) * s
            if tok[p : p + m] == pattern:
                lo = mid + 1
            else:
                hi = mid
        return first, lo

    def count(self, tokens: Sequence[int] | np.ndarray | str) -> int:
        """Exact number of occurrences of ``tokens`` in the documents (the empty query counts every token)."""
        pattern = self.encode(tokens)
        if not pattern:
            return self.n_tokens
        lo, hi = self.range(pattern)
        return hi - lo

    def longest_prefix(self, pattern: bytes) -> int:
        """Length in tokens of the longest prefix of the encoded ``pattern`` that occurs in the corpus."""
        self._load()
        if not pattern:
            return 0
        lo, hi = self._bucket(pattern[: self._step])
        if lo >= hi:
            return 0
        tok, pointer, s, m = self._tok, self._pointer, self._step, len(pattern)
        left, right = lo, hi
        while left < right:
            mid = (left + right) >> 1
            p = pointer(mid) * s
            if tok[p : p + m] < pattern:
                left = mid + 1
            else:
                right = mid
        best = 0
        for rank in (left - 1, left):
            if lo <= rank < hi:
                p = pointer(rank) * s
                best = max(best, _common_prefix(pattern, tok[p : p + m]))
        return best // s

    def documents_of(self, positions: np.ndarray) -> np.ndarray:
        """Index (in document order) of the document holding each corpus position."""
        self._load()
        return np.searchsorted(self.offsets, positions, side="right") - 1


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix of two byte strings (binary search on slice equality, C-speed steps)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _bucket_dtype(n: int) -> np.dtype:
    return np.dtype("<u4") if n < 2**32 else np.dtype("<u8")


def _buckets(corpus: np.ndarray, sa: np.ndarray, depth: int, alphabet: int) -> np.ndarray:
    """Start rank of every ``depth``-token prefix (``alphabet**depth + 1`` entries); a short suffix keys low."""
    if depth == 0:
        return np.zeros(2, dtype=np.uint64)
    keys = corpus.astype(np.int64)
    if depth == 2:
        nxt = np.zeros_like(keys)
        nxt[:-1] = keys[1:]
        keys = keys * alphabet + nxt
    counts = np.bincount(keys, minlength=alphabet**depth)
    buckets = np.zeros(alphabet**depth + 1, dtype=np.uint64)
    np.cumsum(counts, out=buckets[1:])
    return buckets


def iter_ids(index: StoredSpanIndex, doc_indices: Iterable[int]) -> list[str]:
    """Contribution ids of document indices."""
    index._load()
    return [index.ids[int(i)] for i in doc_indices]
