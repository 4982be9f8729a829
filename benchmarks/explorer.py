"""Explorer page latency over a large ledger, and time to first render in Chromium.

World: 10,000 inferences, 2,000 contributions, 100 epochs (synthetic rows through the product's own ingestion:
``Catalog.apply`` for registry events, ``Explorer.ingest`` for market and distributor events, real
``settlement.epoch_report`` documents in a blob store; ``attribution_oracle.explorer.synthetic``). The app runs under
uvicorn in this process and is queried over real HTTP (httpx, one client, sequential requests) for the inference,
contributor and leaderboard pages (random ids per request, fixed seed). Goal: p95 <= 150 ms on 2 cores.
Leaderboards are cached per ledger version; ``leaderboard_after_change`` times them recomputed on every request
(as after each new inference or epoch).

Naive baseline: the contributor's earnings computed as `report show` does, re-reading every accepted report from
the content store on each request (``settlement.report_service.load_report``), instead of the explorer's ledger.

First render: Debian's Chromium (Playwright) loads an inference page; first-contentful-paint from the browser's
own Paint Timing, median of runs.

    nice -n 10 .venv/bin/python benchmarks/explorer.py [--requests 200] [--renders 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from attribution_oracle.explorer.explorer_app import create_app  # noqa: E402
from attribution_oracle.explorer.synthetic import Sizes, build_explorer  # noqa: E402
from attribution_oracle.settlement.report_service import load_report  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
GOAL_MS = 150.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2)}


def _time_pages(base: str, urls: list[str], before_each=None) -> list[float]:
    samples = []
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get(urls[0])  # warm-up (template compilation)
        for url in urls:
            if before_each is not None:
                before_each()
            began = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (url, response.status_code)
    return samples


def _naive_contributor(explorer, account: str) -> int:
    """`report show`'s way: read every accepted report from the store, sum the account's shares."""
    total = 0
    for epoch in sorted(explorer.ledger.epochs):
        report = load_report(explorer.store, explorer.ledger.epochs[epoch].uri)
        total += sum(i.shares.get(account, 0) for i in report.inferences)
    return total


def _first_render(url: str, runs: int) -> float:
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as p:
        for _ in range(runs):
            profile = tempfile.mkdtemp(prefix="bench-chromium-")
            context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = context.new_page()
            page.goto(url, wait_until="load")
            fcp = page.evaluate(
                "() => { const e = performance.getEntriesByName('first-contentful-paint')[0];"
                " const t = performance.timing;"
                " return e ? e.startTime : t.domContentLoadedEventEnd - t.navigationStart; }"
            )
            samples.append(float(fcp))
            context.close()
    return round(statistics.median(samples), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="Requests per page kind.")
    parser.add_argument("--renders", type=int, default=5, help="Chromium first-render runs.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "explorer.json")
    args = parser.parse_args()
    sizes = Sizes()
    tmp = Path(tempfile.mkdtemp(prefix="bench-explorer-"))
    began = time.perf_counter()
    explorer = build_explorer(tmp, sizes)
    build_s = time.perf_counter() - began
    print(f"world: {len(explorer.ledger.inferences)} inferences, {len(explorer.view.contributions)} contributions, "
          f"{len(explorer.ledger.epochs)} epochs (built in {build_s:.1f} s)")  # fmt: skip
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(explorer), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    rng = random.Random(0)
    inference_ids = sorted(explorer.ledger.inferences)
    accounts = sorted(explorer.ledger.latest_epoch().report.rewards)
    plans = {
        "inference": [f"/inferences/{rng.choice(inference_ids)}" for _ in range(args.requests)],
        "contributor": [f"/contributors/{rng.choice(accounts)}" for _ in range(args.requests)],
        "leaderboard": ["/leaderboards"] * args.requests,
    }
    pages = {}
    try:
        for name, urls in plans.items():
            pages[name] = _percentiles(_time_pages(base, urls))

        def ledger_changed() -> None:  # what a new inference does: the leaderboards are recomputed
            explorer.ledger.version += 1

        cold = _time_pages(base, ["/leaderboards"] * max(10, args.requests // 4), ledger_changed)
        pages["leaderboard_after_change"] = _percentiles(cold)
        naive = []
        for account in [rng.choice(accounts) for _ in range(min(args.requests, 20))]:
            t0 = time.perf_counter()
            _naive_contributor(explorer, account)
            naive.append((time.perf_counter() - t0) * 1000)
        naive_stats = _percentiles(naive)
        first_render = _first_render(f"{base}/inferences/{inference_ids[len(inference_ids) // 2]}", args.renders)
    finally:
        server.should_exit = True
        thread.join(10)
    load = os.getloadavg()
    rows = [(name, v["p50_ms"], v["p95_ms"], "yes" if v["p95_ms"] <= GOAL_MS else "NO") for name, v in pages.items()]
    print(f"\n| page | p50 ms | p95 ms | p95 <= {GOAL_MS:.0f} ms |\n| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} |")
    ratio = naive_stats["p95_ms"] / pages["contributor"]["p95_ms"]
    print(f"| naive contributor earnings (re-read 100 reports, no page) | {naive_stats['p50_ms']} | "
          f"{naive_stats['p95_ms']} | {ratio:.1f}x the explorer's contributor page p95 |")  # fmt: skip
    print(f"\nfirst contentful paint of an inference page in Chromium: {first_render} ms (median of {args.renders})")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result = {
        "pages": pages,
        "first_render_ms": first_render,
        "rows": {
            "inferences": len(explorer.ledger.inferences),
            "contributions": len(explorer.view.contributions),
            "epochs": len(explorer.ledger.epochs),
        },
        "naive_contributor": naive_stats,
        "requests_per_page": args.requests,
        "load_average": [round(x, 2) for x in load],
        "goal_p95_ms": GOAL_MS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
