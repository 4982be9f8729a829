"""m-of-n signatures: only on-chain signers count, m distinct matching signatures, disagreements are logged.

The on-chain reads the consensus caches (chain id, oracle set, config digest) are given up front, so no RPC is
made: everything else (EIP-712 signing and recovery, SQLite, the content store) is the real code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.consensus import Consensus
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.epochs import BlockEpochs, Draft, EpochBuilder
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.peers import Peers
from attribution_oracle.settlement.epoch_report import InferenceShares, build_report
from attribution_oracle.settlement.report_service import report_uri
from attribution_oracle.settlement.report_typed_data import sign_report
from attribution_oracle.store.blobs import BlobStore

SIGNERS = [dev_account(k) for k in (7, 8, 9)]
OUTSIDER = dev_account(1)
DIGEST = bytes.fromhex("ab" * 32)
ALICE, BOB, CAROL = (dev_account(k).address for k in (2, 3, 4))


class Setup:
    """A node (signer 7) with its DB, store, builder and consensus; m = 2 of the three signers."""

    def __init__(self, root: Path, deployment) -> None:
        self.deployment = deployment
        self.client = ChainClient("http://127.0.0.1:9")
        self.client._chain_id = 31337  # cached chain reads, given up front (see module docstring)
        self.db = OracleDB(root / "o.sqlite")
        self.store = BlobStore(root / "blobs")
        self.builder = EpochBuilder(self.client, self.deployment, self.db, self.store, BlockEpochs(5), lambda _: None)
        self.builder._config_digest = DIGEST
        self.metrics = Metrics()
        self.consensus = Consensus(
            self.client, self.deployment, self.db, SIGNERS[0], Peers([]), self.builder, self.metrics, 0.0
        )
        self.consensus._oracle_set = ([s.address.lower() for s in SIGNERS], 2)
        self.distributor = self.deployment.contracts["RewardDistributor"].address

    def draft(self, shares: dict[str, int], epoch: int = 1) -> Draft:
        report = build_report(
            chain_id=31337, distributor=self.distributor, config_digest=DIGEST, epoch=epoch, from_block=1,
            to_block=5, inferences=[InferenceShares(1, 1, shares, {"1": 0.5})],
        )  # fmt: skip
        return Draft(epoch, report_uri(self.store.put_bytes(report.canonical_json())), report)

    def signature(self, draft: Draft, account, claimed: str | None = None) -> dict:
        sig = sign_report(draft.message, 31337, self.distributor, account)
        m = draft.message
        return {"epoch": draft.epoch, "reportURI": draft.uri, "signer": claimed or sig.signer,
                "rewardsRoot": "0x" + m.rewards_root.hex(), "totalCumulative": str(m.total_cumulative),
                "attributionRoot": "0x" + m.attribution_root.hex(), "v": sig.v, "r": "0x" + sig.r.hex(),
                "s": "0x" + sig.s.hex()}  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, deployment) -> Setup:
    return Setup(tmp_path, deployment)


def test_only_signatures_of_on_chain_signers_are_kept(setup: Setup) -> None:
    draft = setup.draft({ALICE: 60, BOB: 40})
    assert setup.consensus.receive(setup.signature(draft, SIGNERS[1]))
    assert not setup.consensus.receive(setup.signature(draft, OUTSIDER)), "not in the oracle set"
    forged = setup.signature(draft, OUTSIDER, claimed=SIGNERS[2].address)
    assert not setup.consensus.receive(forged), "claims a signer it does not recover to"
    tampered = {**setup.signature(draft, SIGNERS[2]), "totalCumulative": "1"}
    assert not setup.consensus.receive(tampered), "the signed fields were changed"
    assert not setup.consensus.receive({"epoch": 1}), "malformed"
    assert not setup.consensus.receive({**setup.signature(draft, SIGNERS[2]), "r": "zz"}), "malformed hex"
    assert [s["signer"] for s in setup.consensus.signatures(1)] == [SIGNERS[1].address.lower()]


def test_m_distinct_matching_signatures_and_duplicates_count_once(setup: Setup) -> None:
    draft = setup.draft({ALICE: 60, BOB: 40})
    assert setup.consensus.step(draft) == "collecting", "own signature only: 1 of m = 2"
    mine = setup.signature(draft, SIGNERS[0])
    for _ in range(3):
        setup.consensus.receive(mine)  # a duplicate signer is stored once
    assert len(setup.consensus._matching(draft)) == 1
    assert setup.db.query("SELECT COUNT(*) FROM signatures")[0][0] == 1
    setup.consensus.receive(setup.signature(draft, SIGNERS[1]))
    assert {s["signer"] for s in setup.consensus._matching(draft)} == {s.address.lower() for s in SIGNERS[:2]}


@settings(max_examples=15, deadline=None)
@given(signers=st.lists(st.sampled_from([0, 1, 2, 3]), max_size=8), other=st.lists(st.sampled_from([1, 2]), max_size=3))
def test_matching_counts_distinct_in_set_signers_over_our_report(tmp_path_factory, deployment, signers, other) -> None:
    setup = Setup(tmp_path_factory.mktemp("c"), deployment)
    ours, theirs = setup.draft({ALICE: 60, BOB: 40}), setup.draft({ALICE: 50, CAROL: 50})
    accounts = [*SIGNERS, OUTSIDER]
    for i in signers:
        setup.consensus.receive(setup.signature(ours, accounts[i]))
    for i in other:
        setup.consensus.receive(setup.signature(theirs, accounts[i]))
    # a signer that signed both reports of the epoch (a deep reorg, or equivocation) no longer counts here
    expected = {accounts[i].address.lower() for i in signers if i < 3} - {accounts[i].address.lower() for i in other}
    assert {s["signer"] for s in setup.consensus._matching(ours)} == expected
    assert len(setup.consensus._matching(ours)) >= 2 or len(expected) < 2


def test_a_differing_report_is_logged_once_with_the_differing_leaves(setup: Setup, caplog) -> None:
    ours = setup.draft({ALICE: 60, BOB: 40})
    theirs = setup.draft({ALICE: 50, BOB: 40, CAROL: 10})
    setup.consensus.receive(setup.signature(ours, SIGNERS[0]))
    setup.consensus.receive(setup.signature(theirs, SIGNERS[2]))
    with caplog.at_level(logging.WARNING, logger="attribution_oracle.oracle"):
        setup.consensus._disagreements(ours)
        setup.consensus._disagreements(ours)  # logged once per (epoch, report, signer)
    logged = [r for r in caplog.records if r.getMessage() == "disagreement"]
    assert len(logged) == 1
    fields = logged[0].fields
    assert fields["theirs"] == theirs.uri and fields["ours"] == ours.uri
    assert fields["signer"] == SIGNERS[2].address.lower()
    expected = [{"account": ALICE, "ours": "60", "theirs": "50"}, {"account": CAROL, "ours": "0", "theirs": "10"}]
    assert fields["leaves"] == sorted(expected, key=lambda leaf: leaf["account"].lower())
    assert setup.db.query("SELECT signer, detail FROM disagreements") == [
        (SIGNERS[2].address.lower(), "2 differing accounts")
    ]
    assert len(setup.consensus._matching(ours)) == 1, "the differing signature never counts for our report"


def test_a_differing_report_that_cannot_be_fetched_is_still_logged(setup: Setup, caplog) -> None:
    ours = setup.draft({ALICE: 60, BOB: 40})
    unknown = {**setup.signature(ours, SIGNERS[1]), "reportURI": "sha256://" + "cd" * 32}
    unknown.update(setup.signature(Draft(1, unknown["reportURI"], ours.report), SIGNERS[1]))
    assert setup.consensus.receive(unknown)
    with caplog.at_level(logging.WARNING, logger="attribution_oracle.oracle"):
        setup.consensus._disagreements(ours)
    (record,) = [r for r in caplog.records if r.getMessage() == "disagreement"]
    assert record.fields["detail"] == "their report is unavailable" and record.fields["leaves"] == []


# ------------------------------------------------------------ attacks (issue 13)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def malleated(sig: dict, v_offset: int = 0) -> dict:
    """The same signature with s -> n - s and v flipped (recovers to the same signer, high s), v shifted by
    ``v_offset`` (e.g. -27 for v in {0, 1})."""
    s = int(sig["s"], 16)
    v = 28 if int(sig["v"]) == 27 else 27
    return {**sig, "s": "0x" + (SECP256K1_N - s).to_bytes(32, "big").hex(), "v": v + v_offset}


def test_attack_relayed_malleated_signature_blocks_submission_forever(setup: Setup) -> None:
    draft = setup.draft({ALICE: 60, BOB: 40})
    honest = setup.signature(draft, SIGNERS[1])
    for v_offset in (0, -27, 8):  # high s with v in {27, 28}; v in {0, 1}; an EIP-155-looking v
        assert not setup.consensus.receive(malleated(honest, v_offset)), f"non-canonical copy (v offset {v_offset})"
    assert setup.db.query("SELECT COUNT(*) FROM signatures")[0][0] == 0
    assert setup.consensus.receive(honest)
    [stored] = setup.consensus.signatures(draft.epoch)
    assert (stored["v"], stored["s"]) == (honest["v"], honest["s"])
    # a canonical copy replaces whatever an older version stored (e.g. a high-s one kept before this fix)
    with setup.db.transaction() as db:
        db.execute("UPDATE signatures SET s = ?, v = ?", (malleated(honest)["s"], malleated(honest)["v"]))
    assert setup.consensus.receive(honest)
    [stored] = setup.consensus.signatures(draft.epoch)
    assert (stored["v"], stored["s"]) == (honest["v"], honest["s"])


def test_attack_reorged_peer_signs_a_second_report_for_the_same_epoch(setup: Setup) -> None:
    """Signer 8 signed our report, then (after a deep reorg on its side) another one for the same epoch: its
    signature stops counting here, so this node collects again instead of submitting with a stale signature."""
    ours, rebuilt = setup.draft({ALICE: 60, BOB: 40}), setup.draft({ALICE: 55, BOB: 45})
    assert setup.consensus.receive(setup.signature(ours, SIGNERS[1]))
    assert setup.consensus.receive(setup.signature(ours, SIGNERS[0]))
    assert len(setup.consensus._matching(ours)) == 2
    assert setup.consensus.receive(setup.signature(rebuilt, SIGNERS[1]))
    assert {s["signer"] for s in setup.consensus._matching(ours)} == {SIGNERS[0].address.lower()}
    assert setup.consensus.step(ours) == "collecting"
    setup.consensus.forget(0)  # a rollback here: what was learnt about the conflict is reset with the drafts
    assert len(setup.consensus._matching(ours)) == 2
