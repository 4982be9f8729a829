"""Oracle throughput and latency, end to end on Anvil: paid inferences attributed and settled per second.

For each setup (``--setups``; by default 1 node with m = 1, 3 nodes with m = 2 overlapped and sequential, and 3
nodes without model compute), on a fresh Anvil (0.2 s blocks): a driver pays for inferences in transactions of 64
sent back to back, writes their served records (as the server does, outputs made ahead) and marks them served;
node processes (`attribution-oracle oracle run`) attribute, build, sign, exchange and submit epoch reports.
Measured:

- inferences/s: inferences settled / (last inclusion in an accepted report - first payment);
- p50/p95 latency: payment -> the driver sees the request in an accepted report (polled every 0.1 s);
- node CPU and attribution time per inference; the settlement check (exactly once, shares = pools).

Then a cProfile of one in-process node catching up on the 3-node chain shows where a node's time goes.
Writes ``benchmarks/results/oracle.json`` and appends a section to ``BENCHMARKS.md``.

    nice -n 10 .venv/bin/python benchmarks/oracle.py --served-log-dir /dev/shm       # 640 inferences per setup
    .venv/bin/python benchmarks/oracle.py --inferences 320 --setups nodes_3,nodes_3_no_model

The market's model is a real ModelFactory run (tiny:0 base, see ``oracle_harness.make_market``) registered with
its manifest; served records carry the model's own greedy outputs. ``--scorer`` is passed to the nodes of the
real-scorer rows: ``factory`` (default: the trained model's real gradient + span scorer) or ``module:callable``.
The ``nodes_3_no_model`` row uses the benchmark-only content-hash scorer of ``tests/integration/oracle_scorers.py``
(no model compute: the chain and bookkeeping path alone).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "integration"), str(ROOT / "benchmarks")]

import httpx  # noqa: E402
import torch  # noqa: E402
from _common import append_section  # noqa: E402
from oracle_harness import (  # noqa: E402
    BATCH,
    Driver,
    Market,
    NodeProcess,
    accepted_reports,
    free_port,
    make_market,
    wait_settled,
)

from attribution_oracle.chain.event_decoding import LogDecoder, fetch_events  # noqa: E402
from attribution_oracle.settlement.epoch_report import Report  # noqa: E402
from attribution_oracle.store.blobs import BlobStore  # noqa: E402

GOAL_PER_S = 100.0  # issue 16 (was 50)


@dataclass(frozen=True)
class Setup:
    """One measured configuration: node count, the nodes' scorer, overlapped or sequential node loop."""

    key: str
    nodes: int
    scorer: str  # "factory" = the option given on the command line
    sequential: bool = False
    what: str = ""


SETUPS = {
    s.key: s
    for s in (
        Setup("nodes_1", 1, "factory", what="1 node (m = 1), real scorer, overlapped loop"),
        Setup("nodes_3", 3, "factory", what="3 nodes (m = 2), real scorer, overlapped loop (the goal row)"),
        Setup("nodes_3_sequential", 3, "factory", True, "3 nodes, real scorer, sequential loop (before)"),
        Setup("nodes_3_no_model", 3, "oracle_scorers:content_provider",
              what="3 nodes, no model compute (content-hash scorer), overlapped loop: the chain and bookkeeping "
              "path alone"),
        Setup("nodes_3_no_model_sequential", 3, "oracle_scorers:content_provider", True,
              "3 nodes, no model compute, sequential loop"),
    )
}  # fmt: skip
DEFAULT_SETUPS = "nodes_1,nodes_3,nodes_3_sequential,nodes_3_no_model"


def run_setup(
    root: Path, setup: Setup, inferences: int, scorer: str, epoch_blocks: int, served_dir: Path | None, in_flight: int
) -> tuple[dict, Market]:
    """One measured run; returns the figures and the (still running) market.

    The driver pays in transactions of 64 inferences, ``in_flight`` of them sent back to back per round
    (``ChainClient.send_many``), while a second thread (the serving operator's account) writes the served
    records of the previous round in one transaction and marks them served the same way. The model's outputs
    for every prompt are computed before the clock starts (a server computes them before it answers; here
    the driver's own model would otherwise compete with the nodes for the 2 cores)."""
    served_log = None if served_dir is None else Path(tempfile.mkdtemp(dir=served_dir)) / "served.sqlite"
    market = make_market(root, threshold=1 if setup.nodes == 1 else 2, epoch_blocks=epoch_blocks,
                         served_log=served_log)  # fmt: skip
    node_scorer = scorer if setup.scorer == "factory" else setup.scorer
    ports = [free_port() for _ in range(setup.nodes)]
    extra = ["--scorer", node_scorer, "--submit-delay", "0.5"] + (["--sequential"] if setup.sequential else [])
    procs = [NodeProcess(market, i, ports, extra=extra) for i in range(1, setup.nodes + 1)]
    stores = [BlobStore(p.home / "blobs") for p in procs]
    try:
        driver = Driver(market)
        driver.prepare(inferences)  # untimed: the served outputs, made ahead
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready()
        included: dict[int, float] = {}
        rounds = [BATCH * in_flight] * (inferences // (BATCH * in_flight))
        if inferences % (BATCH * in_flight):
            rounds.append(inferences % (BATCH * in_flight))
        paid: queue.Queue = queue.Queue()
        done: dict[str, float] = {}
        failures: list[BaseException] = []

        def pay() -> None:
            try:
                for n in rounds:
                    paid.put(driver.pay(n, in_flight=in_flight))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failures.append(exc)
            finally:
                paid.put(None)
                done["paid"] = time.time()

        def serve() -> None:
            try:
                for receipts in iter(paid.get, None):
                    driver.serve(receipts)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failures.append(exc)
            finally:
                done["served"] = time.time()

        poller = Poller(market, stores, included)
        cpu_before = [_cpu_seconds(p.proc.pid) for p in procs]
        metrics_before = [_node_metrics(p.port) for p in procs]
        threads = [threading.Thread(target=pay, daemon=True), threading.Thread(target=serve, daemon=True)]
        first = time.time()
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 600
        while len(included) < inferences and time.monotonic() < deadline and not failures:
            poller.poll()
            time.sleep(0.1)
        if failures:
            raise failures[0]
        if len(included) < inferences:
            raise SystemExit(f"only {len(included)} of {inferences} inferences settled within 600 s")
        cpu = [_cpu_seconds(p.proc.pid) - before for p, before in zip(procs, cpu_before, strict=True)]
        metrics = [_node_metrics(p.port) for p in procs]
        latencies = sorted(included[r] - driver.paid_at[r] for r in included)
        span = max(included.values()) - first
        q = statistics.quantiles(latencies, n=100)
        scoring_s = [
            after.get("oracle_attribution_seconds_sum", 0.0) - before.get("oracle_attribution_seconds_sum", 0.0)
            for before, after in zip(metrics_before, metrics, strict=True)
        ]
        figures = {
            "inferences": inferences,
            "inferences_per_s": round(inferences / span, 2),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(q[94], 3),
            "epochs": len(accepted_reports(market, stores)),
            "offered_per_s": round(inferences / (done["served"] - first), 2),
            "node_cpu_ms": round(1000 * statistics.mean(cpu) / inferences, 3),
            "node_attribution_ms": round(1000 * statistics.mean(scoring_s) / inferences, 3),
            "submit_retries": int(sum(m.get("oracle_submit_retries_total", 0.0) for m in metrics)),
            "settlement": settlement_check(market, stores, set(driver.paid_at)),
        }
        return figures, market
    finally:
        for p in procs:
            p.stop()


def settlement_check(market: Market, stores: list[BlobStore], paid: set[int]) -> dict:
    """Exactly-once settlement on the chain the run left: every paid and served inference is in exactly one
    accepted report, each inference's shares sum to its contributor + Datanet-owner pools to the wei, the last
    report's cumulative total (and the distributor's ``latestTotal``) is the sum of every pool, and the epochs
    increase. Raises ``SystemExit`` on any failure (a benchmark of a wrong settlement is not a result)."""
    reports, pools = wait_settled(market, stores)
    counts = Counter(i.request_id for r in reports for i in r.inferences)
    problems = []
    if set(counts) != set(pools) or set(pools) != paid:
        problems.append(f"settled {len(counts)} requests, served {len(pools)}")
    twice = [r for r, c in counts.items() if c > 1]
    if twice:
        problems.append(f"settled more than once: {twice[:5]}")
    wrong = [i.request_id for r in reports for i in r.inferences if sum(i.shares.values()) != pools[i.request_id]]
    if wrong:
        problems.append(f"shares do not sum to the pools: {wrong[:5]}")
    total = sum(pools.values())
    latest = market.contract("RewardDistributor").functions.latestTotal().call()
    if reports[-1].total_cumulative != total or latest != total:
        problems.append(f"cumulative {reports[-1].total_cumulative} / on-chain {latest} != pools {total}")
    epochs = [r.epoch for r in reports]
    if epochs != sorted(set(epochs)):
        problems.append(f"epochs not increasing: {epochs}")
    if problems:
        raise SystemExit("settlement check failed: " + "; ".join(problems))
    return {"settled_once": len(counts), "served": len(pools), "reports": len(reports), "total_wei": str(total),
            "shares_sum_to_pools": True, "latest_total_matches": True}  # fmt: skip


def _node_metrics(port: int) -> dict[str, float]:
    """A node's Prometheus counters and histogram sums (``/metrics``), by name."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            values[name] = float(value)
    return values


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Poller:
    """Notes when each request first appears in an accepted report (reads only new ReportSubmitted events)."""

    def __init__(self, market: Market, stores: list[BlobStore], included: dict[int, float]) -> None:
        """Fill ``included`` (request id -> time first seen in an accepted report)."""
        self.market, self.stores, self.included = market, stores, included
        self.distributor = market.contract("RewardDistributor")
        self.decoder = LogDecoder([self.distributor])
        self.next_block = market.deployment.block_number

    def poll(self) -> None:
        """Read the reports accepted since the last poll."""
        now = time.time()
        head = self.market.client.block("latest")["number"]
        events = fetch_events(self.market.client, [self.distributor], self.next_block, head, self.decoder)
        self.next_block = head + 1
        for event in events:
            if event["event"] != "ReportSubmitted":
                continue  # the benchmark never vetoes
            digest = event["args"]["reportURI"].removeprefix("sha256://")
            store = next(s for s in self.stores if s.has(digest))
            for item in Report.from_json(store.get(digest)).inferences:
                self.included.setdefault(item.request_id, now)


def scoring_comparison(market: Market, root: Path, scorer: str, n: int = 128) -> dict:
    """Scoring ``n`` served inferences one at a time (``scores``) vs one batched pass (``scores_many``), 1 thread.

    The same scorer and records as the nodes; rounds interleaved (single, batched) so the shared machine's load
    hits both alike. Also checks that both give the same scores.
    """
    from attribution_oracle.chain.web3_client import ChainClient
    from attribution_oracle.oracle.scoring import ScorerContext, load_provider
    from attribution_oracle.oracle.served_sources import StoreServedRecords, records_for

    shutil.copytree(market.root / "setup" / "blobs", root / "cmp" / "blobs")
    context = ScorerContext(ChainClient(market.rpc), market.deployment, BlobStore(root / "cmp" / "blobs"),
                            cache_dir=root / "cmp" / "scorer-cache")  # fmt: skip
    model = load_provider(scorer, context)(1)
    records = records_for(StoreServedRecords(market.served_log), range(1, n + 1))
    items = [(r.prompt_token_ids, r.output_token_ids) for _, r in sorted(records.items())]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single, batched, same = [], [], True
    try:
        model.scores(*items[0])  # warm-up
        for _ in range(2):
            started = time.perf_counter()
            alone = [model.scores(p, o) for p, o in items]
            single.append((time.perf_counter() - started) / len(items) * 1e3)
            started = time.perf_counter()
            together = model.scores_many(items) if hasattr(model, "scores_many") else alone
            batched.append((time.perf_counter() - started) / len(items) * 1e3)
            same = same and together == alone
    finally:
        torch.set_num_threads(threads)
    return {"inferences": len(items), "single_ms": round(min(single), 2), "batched_ms": round(min(batched), 2),
            "speedup": round(min(single) / min(batched), 2), "same_scores": same}  # fmt: skip


def profile_node(market: Market, root: Path, scorer: str) -> str:
    """cProfile of one in-process node catching up on ``market``'s chain (fresh state): top entries."""
    from attribution_oracle.chain.wallets import dev_account
    from attribution_oracle.chain.web3_client import ChainClient
    from attribution_oracle.oracle.oracle_node import NodeConfig, OracleNode
    from attribution_oracle.oracle.scoring import ScorerContext, load_provider
    from attribution_oracle.oracle.served_sources import StoreServedRecords

    client = ChainClient(market.rpc)
    shutil.copytree(market.root / "setup" / "blobs", root / "profile" / "blobs")  # the model's manifest and files
    store = BlobStore(root / "profile" / "blobs")
    context = ScorerContext(client, market.deployment, store, cache_dir=root / "profile" / "scorer-cache")
    node = OracleNode(
        client, market.deployment, store, dev_account(7), StoreServedRecords(market.served_log),
        load_provider(scorer, context), context,
        NodeConfig(state_dir=root / "profile", epoch_blocks=None, overlap=False),  # one thread: cProfile sees all
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like the node processes (the harness gives each one torch thread)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(200):
        summary = node.run_once()
        if summary["epoch"] is None and summary["attributed"] == 0:
            break
    profiler.disable()
    wall = time.perf_counter() - started
    torch.set_num_threads(threads)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    # attribution = the scorer's scores()/scores_many() (forward/backward, projection, index product, spans, combine)
    # a batched step calls scores_many once per model and batch; a per-inference scorer calls scores
    scoring = [(v[3], v[1]) for k, v in stats.stats.items() if k[2] in ("scores", "scores_many") and "scor" in k[0]]
    attribution_s = max((t for t, _ in scoring), default=0.0)
    calls = max((n for _, n in scoring), default=0)
    stats.sort_stats("cumulative").print_stats(18)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    head = (
        f"wall {wall:.2f} s (under the profiler); attribution (scorer.scores/scores_many, {calls} calls) "
        f"{attribution_s:.2f} s = {100 * attribution_s / wall:.0f}%; everything else (chain reads, records, "
        f"shares, reports, signing, SQLite) {wall - attribution_s:.2f} s"
    )
    parts = "; ".join(f"{name} {t:.2f} s ({100 * t / wall:.1f}%)" for name, t in _time_by_part(stats).items())
    return head + "\nby part: " + parts + "\n\n" + "\n".join(lines[start:])


#: Where a node's time goes: (part, file fragment, function names); each part's cumulative time is the largest
#: cumulative time among its entries (they nest, so summing would count twice).
PARTS = (
    ("scoring (model + index)", "oracle/record_attribution.py", ("score",)),
    ("served records (read + checks)", "oracle/served_sources.py", ("records_for",)),
    ("shares (allocate)", "settlement/allocation.py", ("allocate",)),
    ("chain RPC (JSON-RPC over HTTP)", "web3/providers/rpc/rpc.py", ("make_request",)),
    ("SQLite", "~", ("<method 'execute' of 'sqlite3.Connection' objects>",
                     "<method 'executemany' of 'sqlite3.Connection' objects>",
                     "<method 'fetchall' of 'sqlite3.Cursor' objects>")),
    ("report build", "settlement/epoch_report.py", ("build_report",)),
    ("signing (EIP-712, transactions)", "", ("sign_report", "sign_transaction", "sign_message")),
)  # fmt: skip


def _time_by_part(stats: pstats.Stats) -> dict[str, float]:
    """Seconds per part of ``PARTS`` (cumulative, the largest entry of each; SQLite sums its builtins)."""
    out: dict[str, float] = {}
    for name, fragment, functions in PARTS:
        times = [v[3] for k, v in stats.stats.items() if k[2] in functions and fragment in k[0]]
        out[name] = sum(times) if fragment == "~" else max(times, default=0.0)
    return out


def main() -> None:
    """Run the setups, print and record the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inferences", type=int, default=640)
    parser.add_argument("--scorer", default="factory", help="the nodes' scorer of the real-scorer rows")
    parser.add_argument("--epoch-blocks", type=int, default=5)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=4,
        help="payment (and markServed) transactions of 64 sent back to back per driver round",
    )
    parser.add_argument("--setups", default=DEFAULT_SETUPS, help=f"comma-separated, of {', '.join(SETUPS)}")
    parser.add_argument(
        "--served-log-dir",
        type=Path,
        default=None,
        help="Folder of the emulated server's record log (default: the run's temp folder); /dev/shm keeps the "
        "log's fsyncs out of the measurement of the oracle.",
    )  # fmt: skip
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "oracle.json",
                        help="where the results JSON goes")  # fmt: skip
    args = parser.parse_args()
    chosen = [SETUPS[k] for k in args.setups.split(",")]
    load_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results: dict[str, dict] = {}
    profile = ""
    comparison: dict = {}
    with tempfile.TemporaryDirectory(prefix="oracle-bench-") as tmp:
        for setup in chosen:
            figures, market = run_setup(Path(tmp) / setup.key, setup, args.inferences, args.scorer,
                                        args.epoch_blocks, args.served_log_dir, args.in_flight)  # fmt: skip
            results[setup.key] = figures
            print(f"{setup.key}: {figures} (load {os.getloadavg()[0]:.2f})", flush=True)
            if setup.key == "nodes_3":
                profile = profile_node(market, Path(tmp) / "prof", args.scorer)
                comparison = scoring_comparison(market, Path(tmp) / "cmp", args.scorer)
                print(f"scoring one at a time vs batched: {comparison}", flush=True)
            market.anvil.stop()
            if args.served_log_dir is not None:
                shutil.rmtree(market.served_log.parent, ignore_errors=True)  # the log's own mkdtemp folder
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = args.results
    summary: dict = {k: {"inferences_per_s": v["inferences_per_s"], "p95_s": v["p95_s"]} for k, v in results.items()}
    for key, figures in results.items():
        summary[key].update({k: figures[k] for k in ("offered_per_s", "node_cpu_ms", "node_attribution_ms")})
        summary[key]["settled_exactly_once"] = figures["settlement"]["settled_once"] == figures["inferences"]
    summary["scoring_single_vs_batched"] = comparison
    summary["load"] = {"start": load_start, "end": load}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    rows = [
        f"| {SETUPS[k].what} | {v['inferences']} | {v['epochs']} | {v['offered_per_s']} | {v['inferences_per_s']} | "
        f"{v['p50_s']} | {v['p95_s']} | {v['node_cpu_ms']} | {v['node_attribution_ms']} | "
        f"{v['settlement']['settled_once']}/{v['settlement']['served']} once, shares = pools |"
        for k, v in results.items()
    ]
    table = "\n".join(
        [
            "| setup | inferences | epochs | paid+served/s offered | settled inferences/s | p50 s | p95 s "
            "| node CPU ms/inference | node attribution ms/inference | settlement check |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    three = results.get("nodes_3", {}).get("inferences_per_s")
    verdict = "not run" if three is None else ("met" if three >= GOAL_PER_S else "MISSED")
    setups_flag = "" if args.setups == DEFAULT_SETUPS else f" --setups {args.setups}"
    if args.results != parser.get_default("results"):
        setups_flag += f" --results {args.results}"
    served_flag = f" --served-log-dir {args.served_log_dir}" if args.served_log_dir else ""
    served_where = f"in `{args.served_log_dir}`" if args.served_log_dir else "on disk, in the run's temp folder"
    details = (
        "(no `nodes_3` row in this run: no scoring comparison or profile)\n"
        if not profile
        else f"""\
Scoring alone, in process, one torch thread, the same scorer and {comparison.get("inferences")} served records
(best of 2 interleaved rounds): one at a time (`scores`) {comparison.get("single_ms")} ms per inference, one batched
pass (`scores_many`) {comparison.get("batched_ms")} ms per inference = {comparison.get("speedup")}x; same scores:
{comparison.get("same_scores")}.

Profile of one node catching up on the 3-node chain (sequential loop, in process, cProfile, cumulative):

```
{profile}
```
"""
    )
    section = f"""
## Oracle, overlapped node loop and a driver that saturates the nodes (`benchmarks/oracle.py`)

Command: `nice -n 10 .venv/bin/python benchmarks/oracle.py --inferences {args.inferences} --scorer {args.scorer} \
--epoch-blocks {args.epoch_blocks} --in-flight {args.in_flight}{setups_flag}{served_flag}`
Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}; machine: {platform.platform()}, \
{os.cpu_count()} cores, Python {platform.python_version()}; load at start: `{load_start}`; at end: `{load}`.
Anvil with 0.2 s blocks, 2 confirmations, epochs of {args.epoch_blocks} blocks, node processes of \
`attribution-oracle oracle run` (one torch thread each); the emulated server's record log {served_where}.
Driver: payments in transactions of 64, {args.in_flight} sent back to back per round
(`ChainClient.send_calldata_many`, calldata encoded with eth_abi), a second account writes the round's served
records in one transaction and sends its `markServed` transactions the
same way; outputs made ahead (untimed). The settlement check (every row) reads the chain afterwards: every paid and
served inference is in exactly one accepted report, its shares sum to its pools to the wei, and the cumulative
total equals the distributor's `latestTotal` and the sum of the pools.

{table}

Goal >= {GOAL_PER_S:.0f} settled inferences/s with 3 nodes (m = 2) and the real scorer: {verdict}\
{"" if three is None else f" ({three}/s)"}.
settled/s = inferences / (last inclusion in an accepted report - first payment). `node CPU ms/inference` = each
node process's user + system CPU during the run per settled inference (mean over the nodes); `node attribution
ms/inference` = the node's own `oracle_attribution_seconds` (scoring + allocation wall time, from /metrics). On 2
cores, n nodes that each score every inference settle at most about 2000 / (n x node CPU ms) inferences/s.

{details}"""
    append_section(section)
    print(table)
    print(profile)


if __name__ == "__main__":
    main()
