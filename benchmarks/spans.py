"""Span index against infini-gram (byte mode, u8) on the same corpora: build, size, count and attribute latency.

Corpora (reproducible, written once as jsonl ``{"text": ...}`` so both indexers read the same file):

- ``1M``, ``10M``, ``100M``: synthetic English-like text of that many bytes: a 50k-word vocabulary of random
  lowercase words drawn from a Zipf(1.2) law, and every 4th sentence re-copies an earlier stretch of 10-60 words
  (so long repeated spans exist, as in real corpora); documents of ~2 kB (geometric lengths). Seed 0.
- ``stdlib-10M`` (real text): the Python standard library's own ``.py`` files (sorted by path, one document per
  file) until 10M bytes, from the interpreter running the benchmark.

Per corpus:

- build: ours = read the jsonl + ``SpanIndex.build_text`` (wall seconds); infini-gram =
  ``python -m infini_gram.indexing --data_dir D --save_dir S --token_dtype u8 --cpus 2 --mem 8 --ulimit 1024``
  (wall seconds of the subprocess: tokenisation (UTF-8 bytes) + rust suffix array).
- bytes per token: every file of the index directory / corpus bytes.
- count: median over 2000 n-grams (lengths 1..20, half sampled from the corpus, half random letters) of
  ``index.count(ids)`` vs ``InfiniGramEngine.count(input_ids=ids)``, ids a ``list[int]`` for both; counts are
  checked equal.
- attribute: median over 30 outputs of 256 bytes (a corpus passage with a random letter changed every ~40 bytes)
  of ``index.attribute(ids, min_len=16)`` (maximal spans, unigram filter, earliest-window ownership, scores)
  vs ``InfiniGramEngine.attribute(input_ids=ids, delim_ids=[], min_len=16, max_cnt=10000, enforce_bow=False)``
  (OLMoTrace's call: maximal spans with count <= max_cnt and the pointers of their occurrences).

    .venv/bin/python benchmarks/spans.py                       # 1M, 10M, 100M, stdlib-10M; appends BENCHMARKS.md
    .venv/bin/python benchmarks/spans.py --sizes 1M --quick    # smoke run, writes spans-quick.json only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import append_section, machine

from attribution_oracle.attribution.spans import SpanIndex

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
SIZES = {"1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}
MIN_LEN = 16
MAX_CNT = 10_000


def synthetic_corpus(n_bytes: int, seed: int = 0) -> list[str]:
    """Zipfian words with copied stretches, split into ~2 kB documents; ``n_bytes`` bytes in all (+- a word)."""
    rng = np.random.default_rng(seed)
    vocab_size = 50_000
    lengths = np.clip(rng.poisson(5, size=vocab_size), 1, 14)
    letters = rng.integers(97, 123, size=int(lengths.sum()), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    words = [bytes(letters[s : s + n]) for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]
    n_words = n_bytes // 5 + 1000
    ids = (rng.zipf(1.2, size=n_words) - 1) % vocab_size
    # every 4th sentence of 10-60 words is a copy of an earlier stretch
    sentence = rng.integers(10, 60, size=n_words // 10 + 1)
    pos = 0
    for k, length in enumerate(sentence.tolist()):
        if pos + length >= n_words:
            break
        if k % 4 == 3 and pos > length:
            src = int(rng.integers(0, pos - length))
            ids[pos : pos + length] = ids[src : src + length]
        pos += length
    text = b" ".join(words[i] for i in ids.tolist())[:n_bytes].decode("ascii")
    cuts = np.cumsum(rng.geometric(1 / 2000, size=n_bytes // 500 + 10))
    cuts = cuts[cuts < len(text)].tolist()
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def stdlib_corpus(n_bytes: int) -> list[str]:
    """The interpreter's own standard library ``.py`` files, sorted, until ``n_bytes`` UTF-8 bytes."""
    docs, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        size = len(text.encode())
        if total + size > n_bytes:
            break
        docs.append(text)
        total += size
    return docs


def write_jsonl(docs: list[str], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps({"text": doc}) + "\n")
    return path


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def build_ours(jsonl: Path, out: Path) -> tuple[float, SpanIndex]:
    start = time.perf_counter()
    with open(jsonl, encoding="utf-8") as handle:
        docs = [(str(i), json.loads(line)["text"]) for i, line in enumerate(handle)]
    index = SpanIndex.build_text(out, docs)
    return time.perf_counter() - start, index


def build_infini(jsonl: Path, out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(jsonl.parent), "--save_dir", str(out),
        "--token_dtype", "u8", "--cpus", "2", "--mem", "8", "--ulimit", "1024",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=3600, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def queries(docs: list[str], rng: np.random.Generator, n: int) -> list[list[int]]:
    """Half n-grams from the corpus, half random lowercase strings; lengths 1..20."""
    out = []
    for k in range(n):
        length = int(rng.integers(1, 21))
        if k % 2 == 0:
            doc = docs[int(rng.integers(len(docs)))].encode()
            if len(doc) <= length:
                continue
            at = int(rng.integers(0, len(doc) - length))
            out.append(list(doc[at : at + length]))
        else:
            out.append(rng.integers(97, 123, size=length).tolist())
    return out


def outputs(docs: list[str], rng: np.random.Generator, n: int) -> list[list[int]]:
    """256-byte passages of the corpus with one random letter changed every ~40 bytes."""
    out = []
    long_docs = [d.encode() for d in docs if len(d.encode()) > 300]
    while len(out) < n:
        doc = long_docs[int(rng.integers(len(long_docs)))]
        at = int(rng.integers(0, len(doc) - 256))
        piece = bytearray(doc[at : at + 256])
        for j in range(int(rng.integers(0, 40)), 256, 40):
            piece[j] = int(rng.integers(97, 123))
        if max(piece) < 0x80:  # ASCII only, so both engines see whole characters
            out.append(list(piece))
    return out


def median_ms(fn, items: list) -> float:
    for item in items[:20]:
        fn(item)
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run_corpus(name: str, docs: list[str], work: Path, quick: bool) -> dict[str, dict[str, float]]:
    from infini_gram.engine import InfiniGramEngine

    n_tokens = sum(len(d.encode()) for d in docs)
    jsonl = write_jsonl(docs, work / f"{name}-data")
    ours_build, index = build_ours(jsonl, work / f"{name}-ours")
    ig_dir = work / f"{name}-ig"
    ig_build = build_infini(jsonl, ig_dir)
    engine = InfiniGramEngine(index_dir=str(ig_dir), eos_token_id=0, vocab_size=255, token_dtype="u8", version=4)
    rng = np.random.default_rng(1)
    qs = queries(docs, rng, 200 if quick else 2000)
    outs = outputs(docs, rng, 10 if quick else 30)
    for q in qs[:200]:
        assert index.count(q) == engine.count(input_ids=q)["count"], q
    result = {
        "ours": {
            "build_s": ours_build,
            "bytes_per_token": index.nbytes() / n_tokens,
            "count_ms": median_ms(index.count, qs),
            "attribute_ms": median_ms(lambda o: index.attribute(o, min_len=MIN_LEN, max_count=MAX_CNT), outs),
        },
        "infini_gram": {
            "build_s": ig_build,
            "bytes_per_token": dir_bytes(ig_dir) / n_tokens,
            "count_ms": median_ms(lambda q: engine.count(input_ids=q), qs),
            "attribute_ms": median_ms(
                lambda o: engine.attribute(
                    input_ids=o, delim_ids=[], min_len=MIN_LEN, max_cnt=MAX_CNT, enforce_bow=False
                ),
                outs,
            ),
        },
    }
    result["_tokens"] = {"n": n_tokens, "documents": len(docs)}  # removed before writing the schema file
    for sub in ("data", "ours", "ig"):
        shutil.rmtree(work / f"{name}-{sub}", ignore_errors=True)
    return result


def markdown(results: dict[str, Any], meta: dict[str, Any], command: str) -> str:
    lines = [
        "",
        f"## Span index vs infini-gram (byte mode) — {meta['date']}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['nproc']} cores (shared), "
        f"uptime before: `{meta['uptime_before']}`, after: `{meta['uptime_after']}`  ",
        "Ours: `SpanIndex.build_text` (pydivsufsort, minimal pointer width, bucket table), "
        "queries in Python over mmap. infini-gram 2.6.0: `python -m infini_gram.indexing --token_dtype u8`, "
        "`InfiniGramEngine.count` / `.attribute(min_len=16, max_cnt=10000)`.",
        "",
        "| corpus | tokens | engine | build s | tokens/s | bytes/token | count ms | attribute ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        n = meta["tokens"][name]["n"]
        for engine in ("ours", "infini_gram"):
            r = row[engine]
            lines.append(
                f"| {name} | {n:,} | {engine} | {r['build_s']:.2f} | {n / r['build_s'] / 1e6:.2f}M | "
                f"{r['bytes_per_token']:.3f} | {r['count_ms']:.4f} | {r['attribute_ms']:.3f} |"
            )
        o, i = row["ours"], row["infini_gram"]
        lines.append(
            f"| {name} | | ratio ours/infini-gram | {o['build_s'] / i['build_s']:.2f} | | "
            f"{o['bytes_per_token'] / i['bytes_per_token']:.3f} | {o['count_ms'] / i['count_ms']:.2f} | "
            f"{o['attribute_ms'] / i['attribute_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M,100M,stdlib-10M", help="Comma-separated corpora to run.")
    parser.add_argument("--quick", action="store_true", help="Fewer queries; results go to spans-quick.json only.")
    parser.add_argument("--work", type=Path, default=None, help="Scratch directory (default: a temp dir).")
    args = parser.parse_args()
    command = "PYTHONPATH=src .venv/bin/python benchmarks/spans.py " + shlex.join(sys.argv[1:])
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {}
    tokens: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        for name in args.sizes.split(","):
            if name == "stdlib-10M":
                docs = stdlib_corpus(10_000_000)
            elif name in SIZES:
                docs = synthetic_corpus(SIZES[name])
            else:
                raise SystemExit(f"unknown corpus {name!r}")
            row = run_corpus(name, docs, Path(scratch), args.quick)
            del docs
            tokens[name] = row.pop("_tokens")
            results[name] = row
            print(name, json.dumps(row), flush=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "uptime_before": uptime_before,
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "tokens": tokens,
        "command": command,
    }
    text = markdown(results, meta, command)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = "spans-quick" if args.quick else "spans"
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS_DIR / f"{stem}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not args.quick:
        append_section(text)


if __name__ == "__main__":
    main()
