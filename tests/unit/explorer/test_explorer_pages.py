"""Explorer pages over a synthetic ledger fed through the product's own ingestion: status codes, escaping,
paging and sorting, live feed, exact amounts (the browser tests cover the real chain world)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from attribution_oracle.explorer.explorer_app import create_app
from attribution_oracle.explorer.synthetic import Sizes, build_explorer

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SIZES = Sizes(inferences=120, contributions=60, epochs=4, datanets=3, contributors=12, models=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    explorer = build_explorer(Path(tmp_path_factory.mktemp("explorer")), SIZES, markup=MARKUP)
    return explorer, TestClient(create_app(explorer))


PAGES = ["/", "/datanets", "/datanets/1", "/contributions/3", "/models", "/models/1", "/inferences",
         "/inferences/5", "/contributors", "/epochs", "/epochs/2", "/leaderboards"]  # fmt: skip


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_and_escapes_markup(world, url):
    _, client = world
    response = client.get(url)
    assert response.status_code == 200
    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    if url in ("/datanets", "/datanets/1", "/inferences/5", "/contributions/3"):
        assert "&lt;script&gt;alert(" in response.text  # shown, escaped


def test_contributor_page_escapes_and_links(world):
    explorer, client = world
    address = explorer.view.contributions[1].contributor
    page = client.get(f"/contributors/{address}")
    assert page.status_code == 200
    own = explorer.view.by_contributor[address.lower()]
    assert all(f'href="/contributions/{cid}"' in page.text for cid in sorted(own)[:25])
    lower = client.get(f"/contributors/{address.lower()}")
    assert lower.status_code == 200 and address in lower.text  # normalised to the checksum form


@pytest.mark.parametrize("url", ["/inferences/999999", "/datanets/77", "/models/9", "/epochs/500",
                                 "/contributions/100000", "/inferences/abc", "/datanets/-1"])  # fmt: skip
def test_unknown_ids_give_a_404_page(world, url):
    _, client = world
    response = client.get(url)
    assert response.status_code == 404
    assert "Not found" in response.text and "<html" in response.text


@pytest.mark.parametrize("bad", ["0xzz", "0x1234", "alice", "0x" + "g" * 40, "0x" + "1" * 41])
def test_malformed_addresses_give_a_400(world, bad):
    _, client = world
    response = client.get(f"/contributors/{bad}")
    assert response.status_code == 400
    assert "Bad request" in response.text


def test_malformed_blob_digest_is_400_and_unknown_is_404(world):
    _, client = world
    assert client.get("/blobs/xyz").status_code == 400
    assert client.get("/blobs/" + "ab" * 32).status_code == 404


def test_malformed_live_query_is_a_json_400(world):
    _, client = world
    response = client.get("/api/live?after_inference=abc")
    assert response.status_code == 400 and "after_inference" in response.json()["error"]


def test_api_errors_are_json(world):
    _, client = world
    response = client.get("/api/inferences/424242/signals")
    assert response.status_code == 404 and "error" in response.json()


def _request_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<td><a href="/inferences/(\d+)">#', html)]


def test_inference_list_is_paged_and_sortable(world):
    explorer, client = world
    first = _request_ids(client.get("/inferences").text)
    assert first == sorted(explorer.ledger.inferences, reverse=True)[:25]
    ascending = _request_ids(client.get("/inferences?sort=request&order=asc&page=2").text)
    assert ascending == list(range(26, 51))
    last = client.get("/inferences?page=999").text  # past the end: the last page
    assert _request_ids(last) == sorted(explorer.ledger.inferences, reverse=True)[100:]
    assert client.get("/inferences?sort=nonsense&order=sideways&page=x").status_code == 200


def test_inference_page_splits_pools_to_the_wei(world):
    explorer, client = world
    item = explorer.ledger.inferences[7]
    html = client.get("/inferences/7").text
    for amount in item.shares.values():
        assert f'<td class="wei">{amount}</td>' in html
    assert sum(item.shares.values()) == item.data_pool
    assert f'<td class="wei">{item.data_pool}</td>' in html


def test_live_feed_lists_only_newer_inferences_and_epochs(world):
    explorer, client = world
    data = client.get("/api/live?after_inference=115&after_epoch=3").json()
    assert [i["id"] for i in data["inferences"]] == [116, 117, 118, 119, 120]
    assert [e["epoch"] for e in data["epochs"]] == [4]
    assert data["counts"] == {"inferences": 120, "epochs": 4}


def test_leaderboard_earnings_are_the_latest_cumulative_amounts(world):
    explorer, client = world
    latest = explorer.ledger.latest_epoch().report
    best, amount = max(latest.rewards.items(), key=lambda kv: (kv[1], kv[0]))
    html = client.get("/leaderboards").text
    board = html.split('id="board-contributors"')[1].split("</table>")[0]
    assert best in board and f'title="{amount} wei"' in board


def test_contributor_claimable_without_a_chain_is_cumulative_minus_claimed(world):
    explorer, client = world
    account = next(iter(explorer.ledger.latest_epoch().report.rewards))
    status = explorer.claim_status(account)
    assert status["claimable"] == explorer.ledger.latest_epoch().report.rewards[account] - status["claimed"]
    assert f'id="claimable" data-wei="{status["claimable"]}"' in client.get(f"/contributors/{account}").text


def test_pages_never_write_the_catalog_or_the_store(world, tmp_path):
    explorer, client = world
    before = {p: p.stat().st_mtime_ns for p in Path(explorer.store.root).rglob("*") if p.is_file()}
    catalog_before = Path(explorer.catalog.path).read_bytes()
    for url in PAGES:
        client.get(url)
    after = {p: p.stat().st_mtime_ns for p in Path(explorer.store.root).rglob("*") if p.is_file()}
    assert after == before
    assert Path(explorer.catalog.path).read_bytes() == catalog_before


def test_incremental_leaderboards_equal_a_recount_from_the_inferences(world):
    from attribution_oracle.explorer import leaderboards

    explorer, _ = world
    ledger = explorer.ledger
    datanet_of = {str(c.id): c.datanet_id for c in explorer.view.contributions.values()}
    fees, settled, earned, influence = {}, {}, {}, {}
    for item in ledger.inferences.values():
        fees[item.model_id] = fees.get(item.model_id, 0) + item.fee
        if item.epoch is not None:
            settled[item.model_id] = settled.get(item.model_id, 0) + 1
            for cid, weight in item.positive_scores().items():
                d = datanet_of[cid]
                influence[d] = influence.get(d, 0.0) + weight
                earned[d] = earned.get(d, 0) + int(item.data_pool * weight)
    models = {e.key: e for e in leaderboards.model_board(ledger)}
    assert {int(k): e.earnings for k, e in models.items()} == fees
    assert {int(k): int(e.influence) for k, e in models.items()} == settled
    datanets = {int(e.key): e for e in leaderboards.datanet_board(ledger, datanet_of)}
    assert {d: e.earnings for d, e in datanets.items()} == earned
    assert all(abs(datanets[d].influence - v) < 1e-9 for d, v in influence.items())


def test_pages_stay_consistent_while_the_poller_ingests(tmp_path):
    """Pages are served while another thread folds new inferences and epochs into the ledger: no 5xx."""
    import threading

    from attribution_oracle.explorer.synthetic import _Events

    explorer = build_explorer(tmp_path, Sizes(inferences=40, contributions=20, epochs=2, datanets=2,
                                              contributors=5, models=1))  # fmt: skip
    client = TestClient(create_app(explorer))
    stop = threading.Event()

    def feed() -> None:
        ev = _Events()
        ev.block = 1000
        rid = 40
        while not stop.is_set() and rid < 2000:
            rid += 1
            ev.add("InferencePaid", requestId=rid, payer="0x" + "44" * 20, modelId=1, inputHash=b"\0" * 32,
                   fee=10**18, epoch=0)  # fmt: skip
            explorer.ingest(ev.items[-1:], ev.block, "0x" + "00" * 32)
            ev.block += 1

    thread = threading.Thread(target=feed)
    thread.start()
    try:
        for _ in range(30):
            for url in ("/", "/inferences", "/leaderboards", "/models/1", "/api/live?after_inference=0"):
                assert client.get(url).status_code == 200
    finally:
        stop.set()
        thread.join()
    assert len(explorer.ledger.inferences) > 40
