"""A separate process for the fixed-point tests: score a saved index with a given torch thread count.

python fixed_point_worker.py INDEX_DIR QUERIES_PT THREADS   prints one JSON line: exact scores (repr) and shares
"""

from __future__ import annotations

import json
import sys

import torch


def main() -> None:
    index_dir, queries_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    from attribution_oracle.attribution import AttributionIndex, canonical_bytes, contributor_shares

    index = AttributionIndex(index_dir)
    queries = torch.load(queries_file)
    scores = index.scores(queries)
    owners = {c: f"0x{int(c[1:]) % 7:040x}" for c in index.ids}
    shares = [
        canonical_bytes(contributor_shares(10**18 + 7, dict(zip(index.ids, row, strict=True)), owners)).decode()
        for row in scores.tolist()
    ]
    top = [t.ids for t in index.top_k(queries, k=5)]
    print(json.dumps({"threads": torch.get_num_threads(), "scores": [list(map(repr, r)) for r in scores.tolist()],
                      "shares": shares, "top": top}))  # fmt: skip


if __name__ == "__main__":
    main()
