"""Pay per inference, serve, build an epoch report, sign 2-of-3, submit, verify and claim: real CLI, real Anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import free_port, make_cli

from attribution_oracle.attribution.rag_shares import rag_scores
from attribution_oracle.attribution.shares import contributor_shares
from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.web3_client import ChainClient

OPEN = 10**18
CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """A chain where 3 paid inferences were served and settled in epoch 1 by 2 of 3 oracles."""
    home = tmp_path_factory.mktemp("settle")
    ao = make_cli(home, f"http://127.0.0.1:{free_port()}")
    ao("node", "start", "--fresh")
    try:
        ao(
            "deploy", "--from", "dev:0", "--oracle-signer", "dev:7", "--oracle-signer", "dev:8",
            "--oracle-signer", "dev:9", "--threshold", "2", "--operator", "dev:6",
        )  # fmt: skip
        for who in ("dev:1", "dev:2", "dev:3", "dev:4", "dev:5"):
            ao("token", "mint", who, "100", "--from", "dev:0")
        ao("datanet", "create", "Bees", "--from", "dev:1")
        ao("datanet", "contribute", "1", *map(str, sorted((CORPUS / "alice").iterdir())[:2]), "--from", "dev:2")
        ao("datanet", "contribute", "1", *map(str, sorted((CORPUS / "bob").iterdir())[:2]), "--from", "dev:3")
        ao("datanet", "approve", "1", "2", "3", "4", "--from", "dev:1")
        ao("datanet", "publish", "1", "--from", "dev:1")
        ao("model", "register", "--base-hash", "11" * 32, "--adapter-hash", "22" * 32, "--datanet", "1",
           "--price", "1", "--split", "5000/4000/1000", "--from", "dev:4")  # fmt: skip
        paid = ao.json("market", "pay", "1", "--prompt", "a", "--prompt", "b", "--prompt", "c", "--from", "dev:5")
        assert [p["requestId"] for p in paid] == [1, 2, 3]
        ao("market", "serve", "1", "2", "3", "--from", "dev:6")
        scores = home / "scores.json"
        # 2 was served with retrieval of contribution 1 (the rag form of the file); 3: no scores, equal split
        by_request = {"1": {"1": 3.0, "3": 1.0}, "2": {"scores": {"4": 1.0, "2": -1.0}, "retrieved": ["1"]}}
        scores.write_text(json.dumps(by_request))
        built = ao.json("report", "build", "--epoch", "1", "--scores", str(scores))
        yield ao, built
    finally:
        ao("node", "stop", ok=False)


def test_two_of_three_signatures_settle_and_contributors_claim(settled):
    ao, built = settled
    uri = built["uri"]
    # contributors pool per inference: 1 OPEN - 5% protocol = 0.95; contributors 40% = 0.38, datanets 10% = 0.095
    assert int(built["totalCumulative"]) == 3 * (38 * OPEN // 100 + 95 * OPEN // 1000)
    ao("report", "sign", uri, "--from", "dev:7")
    one = ao("report", "submit", uri, "--from", "dev:6", ok=False)
    assert one.exit_code == 1 and "needs 2" in one.output
    ao("report", "sign", uri, "--from", "dev:9")
    ao("report", "submit", uri, "--from", "dev:6")
    verified = ao.json("report", "verify", uri)
    assert verified["ok"] is True
    shown_report = ao.json("report", "show", "--top", "1")
    by_request = {i["requestId"]: i for i in shown_report["inferences"]}
    assert by_request[1]["top"] == [{"contribution": "1", "score": 3.0}]
    assert by_request[2]["top"] == [{"contribution": "4", "score": 1.0}]
    assert by_request[3]["top"] == []  # equal split
    assert [c["contribution"] for c in by_request[2]["citations"]] == ["1"]  # the retrieved id is a citation
    assert "citations" not in by_request[1] or by_request[1]["citations"] == []
    assert sum(int(v) for v in shown_report["earned"].values()) == int(built["totalCumulative"])
    assert "top contributions per inference" in ao("report", "show").output

    before = {b["account"]: int(b["open"]) for b in ao.json("wallet", "balance", "dev:1", "dev:2", "dev:3")}
    shown = {r["account"]: r for r in ao.json("rewards", "show", "dev:1", "dev:2", "dev:3")}
    assert sum(int(r["cumulative"]) for r in shown.values()) == int(built["totalCumulative"])
    ao("rewards", "claim", "dev:2", "--from", "dev:2")
    ao("rewards", "claim", "dev:3", "--from", "dev:6")  # a relayer pays the gas; dev:3 gets the OPEN
    ao("rewards", "claim", "dev:1", "--from", "dev:1")
    after = {b["account"]: int(b["open"]) for b in ao.json("wallet", "balance", "dev:1", "dev:2", "dev:3")}
    for account in ("dev:1", "dev:2", "dev:3"):
        assert after[account] - before[account] == int(shown[account]["cumulative"])
    # inference 1: contribution 1 (dev:2) 3x contribution 3 (dev:3); inference 2: contribution 4 (dev:3) scored,
    # contribution 1 (dev:2) retrieved and so paid the documented 20%; inference 3: no scores, equal split
    pool = 38 * OPEN // 100
    first = contributor_shares(pool, {"1": 3.0, "3": 1.0}, {"1": "a", "3": "b"})  # quantised 3:1
    assert abs(first["a"] - pool * 3 // 4) < pool // 2**30
    second = contributor_shares(pool, rag_scores({"4": 1.0, "2": -1.0}, ["1"]), {"1": "a", "4": "b"})
    assert abs(second["a"] - pool // 5) < pool // 2**30 and second["a"] + second["b"] == pool
    assert int(shown["dev:2"]["cumulative"]) == first["a"] + second["a"] + pool // 2
    assert int(shown["dev:3"]["cumulative"]) == first["b"] + second["b"] + pool // 2
    assert int(shown["dev:1"]["cumulative"]) == 3 * 95 * OPEN // 1000

    again = ao("rewards", "claim", "dev:2", "--from", "dev:2", ok=False)
    assert again.exit_code == 1 and "already claimed" in again.output
    client = ChainClient(ao.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [ao.home / "deployments"])
    token = client.contract(deployment, "OpenToken")
    assert token.functions.balanceOf(deployment.contracts["RewardDistributor"].address).call() == 0


def test_every_party_is_shown_and_the_totals_add_up_to_what_was_paid(settled):
    """The builder's 50% and the treasury's fee were invisible; now `report show` lists every party."""
    ao, _ = settled
    shown = ao.json("report", "show")
    client = ChainClient(ao.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [ao.home / "deployments"])
    treasury = client.contract(deployment, "InferenceMarket").functions.treasury().call()
    owner = ao.json("wallet", "balance", "dev:4")[0]["address"]
    roles = {(p["account"], p["role"]): int(p["amount"]) for p in shown["parties"]}
    assert roles[(owner, "model owner")] == 3 * (95 * OPEN // 100 * 5000 // 10_000)
    assert roles[(treasury, "treasury")] == 3 * 5 * OPEN // 100
    assert sum(roles.values()) == int(shown["paid"]) == 3 * OPEN  # three inferences at 1 OPEN each
    table = ao("report", "show").output
    assert "who earned what" in table and "model owner" in table and "treasury" in table


def test_the_model_owner_sees_and_withdraws_earnings(settled):
    ao, _ = settled
    due = 3 * (95 * OPEN // 100 * 5000 // 10_000)
    (shown,) = ao.json("model", "earnings", "dev:4")
    assert shown["earnings"] == str(due)
    before = int(ao.json("wallet", "balance", "dev:4")[0]["open"])
    withdrawn = ao.json("model", "withdraw", "--from", "dev:4")
    assert withdrawn["amount"] == str(due)
    assert int(ao.json("wallet", "balance", "dev:4")[0]["open"]) - before == due
    assert ao.json("model", "earnings", "dev:4")[0]["earnings"] == "0"
    again = ao("model", "withdraw", "--from", "dev:4", ok=False)
    assert again.exit_code == 1 and "no model-owner earnings" in again.output


def test_a_second_epoch_with_nothing_new_keeps_cumulative_amounts(settled):
    ao, _ = settled
    built = ao.json("report", "build", "--epoch", "2")
    assert built["inferences"] == 0
    stale = ao("report", "build", "--epoch", "1", ok=False)
    assert stale.exit_code == 1 and "must be greater" in stale.output
