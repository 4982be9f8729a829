"""ModelScorer on bad input (issue 12) and its fast query path: outputs longer than the context, prompts longer
than the context, prompts in other scripts, contributions the model never saw; the fast query gradient agrees with
the float64 reference path and does not depend on the thread count; the oracle gives an unscorable record the
equal split with the scorer's message."""

from __future__ import annotations

import math

import pytest
import torch
from world import CONTRIBUTORS, make_world

from attribution_oracle.factory import CatalogSource, TrainConfig, train_model
from attribution_oracle.factory.factory_errors import ScoringError
from attribution_oracle.factory.scorer import load_model_scorer

CONFIG = TrainConfig(steps=3, batch_size=2, seq_len=48, proj_dim=32, checkpoint_every=2, eval_fraction=0.0,
                     attribution_checkpoints=2)  # fmt: skip
CONTEXT = 512  # the tiny models' max_position_embeddings
FOREIGN = [
    ("Πώς ξεχειμωνιάζουν οι μέλισσες; ", "Οι μέλισσες σχηματίζουν σμήνος"),  # Greek
    ("蜜蜂怎么过冬？", "蜜蜂聚集成团取暖"),  # CJK
    ("كيف تقضي النحل الشتاء؟ ", "Winter clusters keep the queen warm"),  # Arabic prompt, English output
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bad-input")
    world = make_world(root)
    result = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:4", config=CONFIG,
                         run_dir=root / "run")  # fmt: skip
    return world, result, root


@pytest.fixture(scope="module")
def scorer(trained):
    world, result, root = trained
    return load_model_scorer(world.store, result.manifest_digest, root / "cache")


def test_an_output_longer_than_the_context_is_a_scoring_error_on_every_entry_point(scorer) -> None:
    assert scorer.model.config.max_position_embeddings == CONTEXT
    output = list(b"x" * (CONTEXT + 1))
    for call in (
        lambda: scorer.scores(list(b"Q: "), output),
        lambda: scorer.scores_many([(list(b"Q: "), list(b"fine")), (list(b"Q: "), output)]),
        lambda: scorer.gradient_scores(list(b"Q: "), output),
        lambda: scorer.signals(list(b"Q: "), output),
        lambda: scorer.span_scores(output),
    ):
        with pytest.raises(ScoringError, match=f"the output has {CONTEXT + 1} tokens, more than the model's context"):
            call()


def test_an_output_that_fills_the_context_exactly_is_scored(scorer) -> None:
    output = list(("Inspect the hive every nine days. " * 20).encode())[:CONTEXT]
    scores = scorer.scores(list(b"Q: "), output)
    assert scores and all(math.isfinite(v) and v > 0 for v in scores.values())


def test_a_prompt_that_does_not_fit_with_the_output_is_cut_from_the_left(scorer) -> None:
    output = list(b"Inspect the hive every nine days")
    prompt = list(("How often should a beekeeper look inside? " * 20).encode())
    assert len(prompt) + len(output) > CONTEXT
    kept = prompt[len(prompt) + len(output) - CONTEXT :]
    assert scorer.gradient_scores(prompt, output) == scorer.gradient_scores(kept, output)
    assert all(math.isfinite(v) for v in scorer.gradient_scores(prompt, output).values())


@pytest.mark.parametrize("prompt, output", FOREIGN, ids=["greek", "cjk", "arabic"])
def test_prompts_in_other_scripts_get_finite_repeatable_scores(scorer, prompt: str, output: str) -> None:
    p, o = list(prompt.encode()), list(output.encode())
    scores = scorer.scores(p, o)
    assert scores and all(math.isfinite(v) and v > 0 for v in scores.values())
    assert scorer.scores(p, o) == scores
    assert scorer.scores_many([(p, o)]) == [scores]
    assert set(scores) <= {c.contribution_id for c in scorer.contributions}


def test_a_contribution_the_model_never_saw_is_a_scoring_error(scorer) -> None:
    prompt, output = list(b"How often? "), list(b"Inspect the hive every nine days")
    scores = scorer.scores(prompt, output)
    for known in scorer.contributions:
        key = known.contribution_id
        assert scorer.contribution_score(prompt, output, key) == scores.get(key, 0.0)
    assert scorer.contribution_score(prompt, output, int(scorer.contributions[0].contribution_id)) == scores.get(
        scorer.contributions[0].contribution_id, 0.0
    )
    for unknown in ("999", "", "1#0", "0x01"):
        with pytest.raises(ScoringError, match=f"contribution {unknown} is not one this model was trained on"):
            scorer.contribution_score(prompt, output, unknown)


def test_the_fast_query_features_agree_with_the_float64_reference_path(trained, scorer) -> None:
    world, result, root = trained
    reference = load_model_scorer(world.store, result.manifest_digest, root / "cache", query_path="reference")
    assert len(scorer.attributor._checkpoints) == 2 and scorer.query_path == "fast"
    items = [(list(b"How often? "), list(b"Inspect the hive every nine days")), *[
        (list(p.encode()), list(o.encode())) for p, o in FOREIGN]]  # fmt: skip
    fast = scorer._query_features(items)
    slow = reference._query_features(items)
    assert fast.shape == slow.shape
    cosine = torch.nn.functional.cosine_similarity(fast, slow, dim=1)
    assert bool((cosine > 0.9999).all()), cosine
    for p, o in items:
        a, b = scorer.gradient_scores(p, o), reference.gradient_scores(p, o)
        assert list(a) == list(b)
        top = max(b.values())
        assert all(abs(a[k] - b[k]) <= 1e-3 * top for k in a)


def test_the_query_gradient_does_not_depend_on_the_callers_thread_count(scorer) -> None:
    items = [(list(b"How often? "), list(b"Inspect the hive every nine days")), (list(b"Q: "), list(b"Propolis"))]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = scorer.scores_many(items)
        torch.set_num_threads(2)
        two = scorer.scores_many(items)
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    assert one == two


def _oracle_with_records(tmp_path, scorer, records: dict[int, tuple[str, str]]):
    """Run one oracle attribution step (the real ``oracle.record_attribution.RecordAttributor``) over served
    records of the model; returns ``{request id: (scores, shares)}``, the recorded fallback reasons and the owners."""
    from attribution_oracle.chain.compile import compile_contract
    from attribution_oracle.chain.deployments import ContractRecord, Deployment
    from attribution_oracle.chain.web3_client import ChainClient
    from attribution_oracle.oracle.db import OracleDB
    from attribution_oracle.oracle.node_metrics import Metrics
    from attribution_oracle.oracle.record_attribution import RecordAttributor, load_scores, load_shares
    from attribution_oracle.oracle.scoring import ScorerContext
    from attribution_oracle.oracle.served_sources import StoreServedRecords
    from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
    from attribution_oracle.settlement.allocation import AttributedContribution
    from attribution_oracle.store.blobs import BlobStore

    adapter = scorer.manifest["adapter"]["sha256"]
    owners = {c.contribution_id: c.contributor for c in scorer.contributions}

    class Training(ScorerContext):
        def training_data(self, model_id: int):
            return [AttributedContribution(k, v, 1) for k, v in owners.items()], {1: "0x" + "c3" * 20}

        def adapter_hash(self, model_id: int) -> str:
            return adapter

    names = ("InferenceMarket", "RewardDistributor")
    contracts = {n: ContractRecord(address="0x" + f"{i + 1:040x}", abi=compile_contract(n).abi)
                 for i, n in enumerate(names)}  # fmt: skip
    deployment = Deployment(chain_id=31337, block_number=1, block_hash="0x" + "00" * 32, deployer="0x" + "11" * 20,
                            contracts=contracts)  # fmt: skip
    db = OracleDB(tmp_path / "o.sqlite")
    log = ServedRecordStore(tmp_path / "served.sqlite")
    context = Training(ChainClient("http://127.0.0.1:9"), deployment, BlobStore(tmp_path / "blobs"))
    attributor = RecordAttributor(db, StoreServedRecords(log.path), lambda _: scorer, context, Metrics(), 0)
    with db.transaction() as c:
        for request_id, (prompt, output) in records.items():
            c.execute("INSERT INTO payments VALUES (?, 1, 9, '1000', '0')", (request_id,))
            c.execute("INSERT INTO served VALUES (?, 10, 0)", (request_id,))
            log.add(ServedRecord(request_id, 1, adapter, prompt, tuple(prompt.encode()), tuple(output.encode()),
                                 output, 0.0))  # fmt: skip
    with db.transaction() as c:
        OracleDB.set_meta(c, "cursor_number", "20")
        OracleDB.set_meta(c, "cursor_hash", "h20")
    assert attributor.step().attributed == len(records)
    rows = {r: (load_scores(s), load_shares(sh)) for r, s, sh in db.query("SELECT request_id, scores, shares "
                                                                           "FROM attributions")}  # fmt: skip
    return rows, dict(db.query("SELECT request_id, reason FROM attribution_fallbacks")), owners


def test_the_oracle_gives_a_too_long_record_the_equal_split_and_scores_the_others(scorer, tmp_path) -> None:
    prompt = "How often? "
    records = {
        1: (prompt, "x" * (CONTEXT + 1)),  # longer than the context
        2: (prompt, "Inspect the hive every nine days"),
        3: (FOREIGN[0][0], FOREIGN[0][1]),
    }
    rows, fallbacks, owners = _oracle_with_records(tmp_path, scorer, records)
    assert rows[1][0] == {} and sum(rows[1][1].values()) == 1000
    assert set(rows[1][1]) == set(CONTRIBUTORS) and len(set(rows[1][1].values())) <= 2  # equal split (+-1 wei)
    assert list(fallbacks) == [1] and "more than the model's context of 512" in fallbacks[1]
    for request_id in (2, 3):
        scores, shares = rows[request_id]
        assert scores and sum(shares.values()) == 1000
        assert set(shares) <= set(owners.values())


def test_the_oracles_default_scorer_computes_query_gradients_in_float64(trained, scorer) -> None:
    """Nodes on different machines must agree bit for bit: a float32 gradient's last bits differ between CPU
    kernels often enough to flip a 14-bit rounding, so float32 is opt-in (``dtype=torch.float32``)."""
    world, result, root = trained
    assert scorer.query_path == "fast"
    assert {p.dtype for p in scorer.model.parameters()} == {torch.float64}
    opted = load_model_scorer(world.store, result.manifest_digest, root / "cache32", dtype=torch.float32)
    assert {p.dtype for p in opted.model.parameters()} == {torch.float32}
    prompt, output = list(b"How often? "), list(b"Inspect the hive every nine days")
    a, b = scorer.gradient_scores(prompt, output), opted.gradient_scores(prompt, output)
    assert list(a) == list(b) and max(a, key=a.get) == max(b, key=b.get)
