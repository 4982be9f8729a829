"""A persisted attribution index: finalised training features in safetensors shards plus a JSON manifest.

Layout of an index directory::

    manifest.json                 settings (model hash, parameters, projection seed, estimator, checkpoints),
                                  the contribution ids in row order and the list of shards
    features-00000.safetensors    {"features": float32 [rows, dim]}: one shard per build or append
    transforms.safetensors        the per-checkpoint maps that finalise appended examples

Shards are memory-mapped (read straight from the page cache, never copied whole), so opening an index is
instant. Scoring is exact and order-independent (``attribution.fixed_point``): on the first query the rows are
quantised to 14 bits with a power-of-two scale per row (two int8 limbs, kept in memory: half the float32 size,
plus a oneDNN-prepacked copy for the CPU kernel),
queries likewise, and the dot products are accumulated in integers, so every machine and thread count gets the
same scores.
Appending writes a new shard and then replaces the manifest atomically: a crash mid-append leaves the previous
index intact.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from attribution_oracle.attribution.fixed_point import FixedPoint, quantise, scores_float
from attribution_oracle.files import atomic_write

FORMAT = "attribution-oracle/index@1"
_DTYPES = {"F32": np.float32, "F64": np.float64}


def _mmap_safetensors(path: Path, name: str) -> np.ndarray:
    """Memory-map one tensor of a safetensors file (little-endian header, then raw data)."""
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    meta = header[name]
    start, end = meta["data_offsets"]
    dtype = _DTYPES[meta["dtype"]]
    shape = tuple(meta["shape"])
    if end == start:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + header_len + start, shape=shape)


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True)
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _save_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


@dataclass
class TopK:
    """The ``k`` best contributions of one query."""

    ids: list[str]
    scores: list[float]


class AttributionIndex:
    """Finalised training features of one model, queryable by query-side features."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no attribution index at {self.path} (missing manifest.json)")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path} is not an {FORMAT} manifest")
        self.ids: list[str] = list(self.manifest["contribution_ids"])
        with warnings.catch_warnings():  # the shards are read-only maps on purpose: nothing here writes to them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self._shards = [
                torch.from_numpy(_mmap_safetensors(self.path / s, "features")) for s in self.manifest["shards"]
            ]
        self._matrix: Tensor | None = None
        self._fixed: FixedPoint | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def create(
        cls,
        path: Path,
        features: Tensor,
        contribution_ids: list[str],
        manifest: dict[str, Any],
        transforms: Sequence[Tensor | None] = (),
    ) -> AttributionIndex:
        """Write a new index (the directory must be empty or absent)."""
        path = Path(path)
        if (path / "manifest.json").exists():
            raise FileExistsError(f"an index exists already at {path}")
        if len(set(contribution_ids)) != len(contribution_ids):
            raise ValueError("contribution ids must be unique")
        path.mkdir(parents=True, exist_ok=True)
        shard = "features-00000.safetensors"
        _save_tensors(path / shard, {"features": features.to(torch.float32).cpu()})
        saved = {f"checkpoint_{i}": t.cpu() for i, t in enumerate(transforms) if t is not None}
        if saved:
            _save_tensors(path / "transforms.safetensors", saved)
        body = dict(manifest, format=FORMAT, contribution_ids=list(contribution_ids), shards=[shard])
        body["dim"] = int(features.shape[1])
        _write_json(path / "manifest.json", body)
        return cls(path)

    def append(self, features: Tensor, contribution_ids: list[str]) -> AttributionIndex:
        """Add rows for new contributions (e.g. a new Datanet version) as a new shard."""
        if features.shape[0] != len(contribution_ids):
            raise ValueError("one contribution id per feature row is needed")
        if features.shape[1] != self.dim:
            raise ValueError(f"feature dimension {features.shape[1]} does not match the index's {self.dim}")
        clash = set(contribution_ids) & set(self.ids)
        if clash or len(set(contribution_ids)) != len(contribution_ids):
            raise ValueError(f"contribution ids already indexed or repeated: {sorted(clash)[:3]}")
        shard = f"features-{len(self.manifest['shards']):05d}.safetensors"
        _save_tensors(self.path / shard, {"features": features.to(torch.float32).cpu()})
        body = dict(self.manifest)
        body["shards"] = [*self.manifest["shards"], shard]
        body["contribution_ids"] = [*self.ids, *contribution_ids]
        _write_json(self.path / "manifest.json", body)
        return AttributionIndex(self.path)

    def transforms(self) -> list[Tensor]:
        """The per-checkpoint maps that finalise appended examples (empty for grad-dot)."""
        file = self.path / "transforms.safetensors"
        if not file.is_file():
            return []
        from safetensors.torch import load_file

        loaded = load_file(str(file))
        return [loaded[k] for k in sorted(loaded, key=lambda k: int(k.split("_")[1]))]

    # ------------------------------------------------------------------ querying

    @property
    def dim(self) -> int:
        """Feature dimension (projection dim times checkpoints)."""
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return len(self.ids)

    def matrix(self) -> Tensor:
        """All rows as one ``[n, dim]`` tensor (memory-mapped when there is a single shard)."""
        if self._matrix is None:
            self._matrix = self._shards[0] if len(self._shards) == 1 else torch.cat(self._shards)
        return self._matrix

    def fixed_point(self) -> FixedPoint:
        """The rows quantised for exact scoring (computed on first use, then kept in memory)."""
        if self._fixed is None:
            self._fixed = quantise(self.matrix())
        return self._fixed

    def scores(self, query_features: Tensor) -> Tensor:
        """Exact scores ``[n_query, n]`` (float64) of every contribution for each query (``fixed_point`` rule)."""
        q = query_features
        if q.dim() == 1:
            q = q.unsqueeze(0)
        if q.shape[1] != self.dim:
            raise ValueError(f"query features have dimension {q.shape[1]}, the index {self.dim}")
        return scores_float(quantise(q), self.fixed_point())

    def top_k(self, query_features: Tensor, k: int = 10) -> list[TopK]:
        """The ``k`` highest-scoring contributions of each query, best first (ties by row order)."""
        scores = self.scores(query_features)
        k = min(k, scores.shape[1])
        out = []
        for row in scores:
            if k == 0:
                out.append(TopK([], []))
                continue
            kth = torch.topk(row, k).values[-1]
            candidates = torch.nonzero(row >= kth).squeeze(1)  # ascending row order
            values, order = torch.sort(row[candidates], descending=True, stable=True)
            rows = candidates[order[:k]].tolist()
            out.append(TopK([self.ids[r] for r in rows], values[:k].tolist()))
        return out

    def scores_by_id(self, query_features: Tensor) -> dict[str, float]:
        """One query's score for every contribution id."""
        row = self.scores(query_features)[0].tolist()
        return dict(zip(self.ids, row, strict=True))
