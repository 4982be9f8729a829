"""README screenshots of the explorer, taken by Debian's Chromium (Playwright) from a real world.

Builds the browser tests' world (real Anvil, contracts, CLI, a `tiny:0` model, paid and served inferences, 2-of-3
signed reports, one tampered; ``tests/integration/explorer_harness.py``), starts `attribution-oracle explorer` on
it and saves PNGs into docs/explorer/. Stops everything it started.

    .venv/bin/python scripts/screenshots.py [--out docs/explorer]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "integration")]

import httpx  # noqa: E402
from cli_harness import free_port  # noqa: E402
from explorer_harness import build_world  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
SHOTS = [
    ("home.png", "/", None),
    ("inference.png", "/inferences/1", "mark.span >> nth=0"),
    ("contributor.png", "/contributors/{earner}", None),
    ("epoch-tampered.png", "/epochs/2", None),
    ("model.png", "/models/1", None),
    ("leaderboards.png", "/leaderboards", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "explorer")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="screenshots-"))
    print("building the world (Anvil, contracts, a tiny model, inferences, reports)…")
    world = build_world(root)
    proc = None
    try:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **world.cli.env}
        cmd = [sys.executable, "-c", "from attribution_oracle.cli.main import main; main()", "--home", str(world.home),
               "--rpc", world.rpc, "explorer", "--port", str(port), "--served", str(world.served_log)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        httpx.get(base + "/inferences/1", timeout=120)
        from playwright.sync_api import sync_playwright

        from attribution_oracle.chain.deployments import load_deployment
        from attribution_oracle.chain.web3_client import ChainClient
        from attribution_oracle.settlement.chain_data import submissions
        from attribution_oracle.settlement.report_service import load_report
        from attribution_oracle.store.blobs import BlobStore

        client = ChainClient(world.rpc)
        deployment = load_deployment(client.chain_id, [world.home / "deployments"])
        report = load_report(BlobStore(world.home / "blobs"), submissions(client, deployment)[-1].report_uri)
        earner = max(report.rewards, key=report.rewards.get)
        profile = tempfile.mkdtemp(prefix="screenshots-chromium-")
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1280, "height": 860},
            )  # fmt: skip
            page = context.new_page()
            for name, url, click in SHOTS:
                page.goto(base + url.format(earner=earner), wait_until="networkidle")
                if click:
                    page.click(click)
                page.wait_for_timeout(400)
                page.screenshot(path=str(args.out / name), full_page=False)
                print("saved", args.out / name)
            context.close()
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(15)
        world.cli("node", "stop", ok=False)


if __name__ == "__main__":
    main()
