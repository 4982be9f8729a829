"""The explorer in a real browser (Playwright driving Debian's Chromium) over a world built by the real flow.

The world (``explorer_harness``): real Anvil, contracts, CLI, a `tiny:0` model trained by the ModelFactory,
paid and served inferences, reports built from the real scorer and signed 2 of 3; epoch 2 is tampered. The
explorer runs as its own `attribution-oracle explorer` process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from cli_harness import free_port
from explorer_harness import ROOT, build_world, serve, signals_of
from playwright import sync_api as playwright_api

from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.settlement.chain_data import submissions
from attribution_oracle.settlement.report_service import load_report
from attribution_oracle.store.blobs import BlobStore

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def _start_explorer(world, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **world.cli.env}
    args = ["--home", str(world.home), "--rpc", world.rpc, "explorer", "--port", str(port), "--served",
            str(world.served_log), "--poll-interval", "0.5"]  # fmt: skip
    log = open(world.home / "explorer.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-c", "from attribution_oracle.cli.main import main; main()", *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """The world and the explorer's base URL."""
    root = tmp_path_factory.mktemp("explorer-world")
    world = build_world(root)
    proc = None
    try:
        port = free_port()
        proc = _start_explorer(world, port)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (world.home / "explorer.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the explorer did not come up"
            time.sleep(0.3)
        httpx.get(base + "/inferences/1", timeout=120)  # first load: the span index is restored from the store
        yield world, base
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        world.cli("node", "stop", ok=False)


@pytest.fixture(scope="module")
def browser_context():
    """Chromium with a fresh profile; never `playwright install` (the system's Chromium is used)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=FLAGS)
        context.set_default_timeout(30_000)
        yield context
        context.close()


@pytest.fixture
def page(browser_context):
    """A fresh tab that records console errors and uncaught exceptions."""
    tab = browser_context.new_page()
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    tab.close()


def _fingerprint(world) -> tuple:
    catalog = (world.home / "catalog.sqlite").read_bytes()
    blobs = sorted(str(p.relative_to(world.home)) for p in (world.home / "blobs").rglob("*") if p.is_file())
    client = ChainClient(world.rpc)
    return hashlib.sha256(catalog).hexdigest(), tuple(blobs), client.block("latest")["number"]


def test_navigation_works_and_never_writes(explorer, page):
    world, base = explorer
    before = _fingerprint(world)
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "The ledger at a glance"
    page.click("header nav >> text=Datanets")
    page.click("table >> a[href='/datanets/1'] >> nth=0")
    assert page.locator("h1").inner_text().startswith("Datanet 1")
    assert page.locator("#audit tbody tr").count() >= 1
    page.click("#contributions a[href='/contributions/1']")
    assert page.locator("h1").inner_text() == "Contribution #1"
    page.click("header nav >> text=Models")
    page.click("a[href='/models/1'] >> nth=0")
    assert page.locator("#loss-chart").count() == 1 and page.locator("h1").inner_text() == "Model 1"
    page.click("header nav >> text=Inferences")
    page.click("a[href='/inferences/1'] >> nth=0")
    assert page.locator("h1").inner_text() == "Inference #1"
    page.click("header nav >> text=Epochs")
    page.click("a[href='/epochs/1'] >> nth=0")
    assert page.locator("#verified-badge").inner_text() == "verified"
    page.click("header nav >> text=Leaderboards")
    assert page.locator("#board-contributors tbody tr").count() >= 2
    page.click("#board-contributors a.addr >> nth=0")
    assert page.locator("h1").inner_text().startswith("Contributor 0x")
    page.click("a.sort >> text=request")  # sort a list by a column
    assert "i_sort=request" in page.url
    assert page.errors == []
    assert _fingerprint(world) == before  # no catalog write, no blob, no transaction


def test_clicking_a_highlighted_span_shows_the_contribution_holding_it(explorer, page):
    world, base = explorer
    page.goto(base + "/inferences/1")
    quote = world.quotes[1]
    mark = page.locator("mark.span", has_text=quote[:30]).first
    assert quote.startswith(mark.inner_text().strip()[:30])
    mark.click()
    visible = page.locator("#contributions-panel li.doc-card:not([hidden])")
    assert visible.count() >= 1
    texts = [visible.nth(i).inner_text() for i in range(visible.count())]
    assert all(quote[:30] in t for t in texts), texts  # only documents holding the span remain
    hidden = page.locator("#contributions-panel li.doc-card[hidden]").count()
    assert hidden >= 1
    page.click("#panel-clear")
    assert page.locator("#contributions-panel li.doc-card[hidden]").count() == 0
    page.wait_for_function("document.querySelector('.s-gradient').textContent !== '…'")
    page.click(".sorter button[data-rank=span]")
    assert page.locator(".sorter button.active").inner_text() == "span"
    assert page.errors == []


def test_signals_panel_shows_every_side_the_oracle_combines(explorer, page):
    """The panel's gradient, span and lexical scores are the scorer's own sides (the span side with the prompt)."""
    world, base = explorer
    expected = signals_of(world, 1)
    shown = httpx.get(base + "/api/inferences/1/signals", timeout=120).json()
    assert shown["available"] is True
    for kind in ("gradient", "span", "lexical"):
        assert shown[kind].keys() == {str(k) for k in expected[kind]}, kind
        for cid, value in expected[kind].items():
            assert shown[kind][str(cid)] == pytest.approx(value, rel=1e-9, abs=1e-12), (kind, cid)
    assert any(shown["lexical"].values())  # the lexical side carries fact tracing: it must be visible
    page.goto(base + "/inferences/1")
    page.wait_for_function("document.querySelector('.s-lexical').textContent !== '…'")
    page.click(".sorter button[data-rank=lexical]")
    first = page.locator("#contributions-panel li.doc-card").first.get_attribute("data-contribution")
    assert shown["lexical"].get(first, 0) == max(shown["lexical"].values())
    assert page.errors == []


def test_contributor_claimable_equals_the_chain(explorer, page):
    world, base = explorer
    client = ChainClient(world.rpc)
    deployment = load_deployment(client.chain_id, [world.home / "deployments"])
    distributor = client.contract(deployment, "RewardDistributor")
    report = load_report(BlobStore(world.home / "blobs"), submissions(client, deployment)[-1].report_uri)
    for account in report.rewards:
        amount, proof = report.rewards_tree.proof(account)
        chain = client.call(distributor.functions.claimable(account, amount, proof))
        page.goto(f"{base}/contributors/{account}")
        assert int(page.locator("#claimable").get_attribute("data-wei")) == chain
        assert f"rewards claim {account}" in page.locator("#claim-cli").inner_text()
    earner = max(report.rewards, key=report.rewards.get)
    world.cli("rewards", "claim", earner, "--from", "dev:6")
    page.goto(f"{base}/contributors/{earner}")
    assert int(page.locator("#claimable").get_attribute("data-wei")) == 0
    assert int(page.locator("#claimed").get_attribute("data-wei")) == report.rewards[earner]
    assert page.locator("#earnings-chart").count() == 1
    assert page.errors == []


def test_verified_badge_turns_red_for_a_tampered_report(explorer, page):
    _, base = explorer
    page.goto(base + "/epochs/1")
    green = page.locator("#verified-badge")
    assert green.inner_text() == "verified"
    page.goto(base + "/epochs/2")
    badge = page.locator("#verified-badge")
    assert badge.inner_text() == "does not verify"
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(185, 28, 28)"
    assert badge.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"  # readable on red
    assert page.locator("#differing-leaves tbody tr").count() == 2
    assert page.locator("#checks tr.bad").inner_text().startswith("every inference's shares follow")
    assert page.errors == []


def test_markup_in_prompts_outputs_names_and_texts_is_shown_escaped(explorer, page):
    _, base = explorer
    for url in ("/inferences/1", "/datanets/1", "/datanets", "/contributions/6", "/"):
        page.goto(base + url)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main b:text-is('bold')").count() == 0
    page.goto(base + "/inferences/1")
    assert "<script>window.__pwned = 1</script>" in page.locator("pre.prompt").inner_text()
    assert "<script>" in page.locator("#output").inner_text()
    page.goto(base + "/datanets")
    assert "<script>" in page.locator("main table").inner_text()
    assert page.errors == []


def test_unknown_ids_and_malformed_addresses_in_the_browser(explorer, page):
    _, base = explorer
    assert page.goto(base + "/inferences/424242").status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert page.goto(base + "/contributors/0xnot-an-address").status == 400
    assert page.locator("h1").inner_text() == "Bad request"
    assert page.goto(base + "/epochs/99").status == 404


def test_new_inferences_and_epochs_appear_without_a_reload(explorer, page):
    world, base = explorer
    page.goto(base + "/inferences")
    page.evaluate("window.__marker = 'same page'")
    epochs = page.context.new_page()
    epochs.goto(base + "/epochs")
    (new,) = serve(world, ["Is this live?"], ["Queen cells hanging from the bottom bars of frames are swarm cells."])
    page.wait_for_selector(f"tr[data-request='{new}']", timeout=20_000)
    assert page.evaluate("window.__marker") == "same page"
    from explorer_harness import settle

    settle(world, 3, [new])
    epochs.wait_for_selector("tr[data-epoch='3']", timeout=20_000)
    epochs.close()
    assert page.errors == []


WALLET = """
window.ethereum = {
  request: ({ method, params }) => fetch(%r, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: method === "eth_requestAccounts" ? "eth_accounts" : method,
                           params: params || [] }),
  }).then((r) => r.json()).then((j) => (j.error ? Promise.reject(new Error(j.error.message)) : j.result)),
};
"""


def test_claim_with_a_browser_wallet_sends_the_real_claim(explorer, browser_context):
    """An EIP-1193 provider backed by Anvil's unlocked dev accounts (no wallet extension can be installed here):
    the page's claim button sends `claim(account, cumulative, proof)` and the chain pays the account."""
    world, base = explorer
    client = ChainClient(world.rpc)
    deployment = load_deployment(client.chain_id, [world.home / "deployments"])
    distributor = client.contract(deployment, "RewardDistributor")
    report = load_report(BlobStore(world.home / "blobs"), submissions(client, deployment)[-1].report_uri)
    account = next(a for a in sorted(report.rewards) if client.call(distributor.functions.claimed(a)) == 0)
    tab = browser_context.new_page()
    tab.add_init_script(WALLET % world.rpc)
    tab.goto(f"{base}/contributors/{account}")
    button = tab.locator("#wallet-claim")
    assert button.is_visible()
    button.click()
    tab.wait_for_function("document.getElementById('wallet-status').textContent.startsWith('sent 0x')")
    deadline = time.monotonic() + 20
    while client.call(distributor.functions.claimed(account)) != report.rewards[account]:
        assert time.monotonic() < deadline, "the claim did not land"
        time.sleep(0.3)
    tab.close()
