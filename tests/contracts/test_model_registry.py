"""ModelRegistry: registration rules, prices, deactivation, the protocol fee bound, views and paging."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import ape
import pytest
from contract_helpers import EMPTY_BYTES32, MAX_UINT256, ONE, PROTOCOL_FEE_BPS, ZERO_ADDRESS, content_hash
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from attribution_oracle.store.merkle import MerkleTree

MAX_PROTOCOL_FEE_BPS = 2_000
BASE = content_hash("base-model")
ADAPTER = content_hash("adapter")
SPLIT = (7_000, 2_000, 1_000)
PRICE = ONE // 100


def publish_version(datanet_registry, datanet_id: int, owner, labels) -> int:
    """Contribute, approve and publish ``labels`` as the next version of a Datanet; returns the version."""
    for label in labels:
        cid = datanet_registry.contribute(datanet_id, content_hash(label), "", 1, 0, sender=owner).return_value
        datanet_registry.approve(cid, sender=owner)
    hashes = list(datanet_registry.getApprovedHashes(datanet_id, 0, 100))
    tx = datanet_registry.publishVersion(datanet_id, MerkleTree(hashes).root, len(hashes), "", sender=owner)
    return tx.return_value


@pytest.fixture(scope="module")
def published(datanet_registry, create_datanet, alice, bob, carol):
    """Datanet 1 (Alice) has versions 1 and 2, Datanet 2 (Bob) version 1, Datanet 3 (Carol) none."""
    d1 = create_datanet(alice, 0, name="d1")
    d2 = create_datanet(bob, 0, name="d2")
    d3 = create_datanet(carol, 0, name="d3")
    publish_version(datanet_registry, d1, alice, ["d1-a"])
    publish_version(datanet_registry, d1, alice, ["d1-b"])
    publish_version(datanet_registry, d2, bob, ["d2-a"])
    return SimpleNamespace(d1=d1, d2=d2, d3=d3)


@pytest.fixture
def registry(model_registry, published):
    return model_registry


def register(registry, sender, sources=((1, 1),), split=SPLIT, price=PRICE, base=BASE, adapter=ADAPTER, uri="m"):
    return registry.register(base, adapter, list(sources), price, split, uri, sender=sender)


# ---------------------------------------------------------------- deployment and governance


def test_deployment(model_registry, datanet_registry, governance):
    assert model_registry.datanets() == datanet_registry.address
    assert model_registry.protocolFeeBps() == PROTOCOL_FEE_BPS
    assert model_registry.MAX_PROTOCOL_FEE_BPS() == MAX_PROTOCOL_FEE_BPS
    assert model_registry.owner() == governance
    assert model_registry.modelCount() == 0


def test_constructor_fee_bound(project, datanet_registry, governance):
    with ape.reverts("ModelRegistry: protocol fee above bound"):
        project.ModelRegistry.deploy(datanet_registry, MAX_PROTOCOL_FEE_BPS + 1, sender=governance)
    at_bound = project.ModelRegistry.deploy(datanet_registry, MAX_PROTOCOL_FEE_BPS, sender=governance)
    assert at_bound.protocolFeeBps() == MAX_PROTOCOL_FEE_BPS


def test_set_protocol_fee(model_registry, governance, alice):
    tx = model_registry.setProtocolFee(MAX_PROTOCOL_FEE_BPS, sender=governance)
    assert [model_registry.ProtocolFeeSet(protocolFeeBps=MAX_PROTOCOL_FEE_BPS)] == tx.events.filter(
        model_registry.ProtocolFeeSet
    )
    assert model_registry.protocolFeeBps() == MAX_PROTOCOL_FEE_BPS
    model_registry.setProtocolFee(0, sender=governance)
    assert model_registry.protocolFeeBps() == 0
    with ape.reverts("ModelRegistry: protocol fee above bound"):
        model_registry.setProtocolFee(MAX_PROTOCOL_FEE_BPS + 1, sender=governance)
    with ape.reverts("ModelRegistry: protocol fee above bound"):
        model_registry.setProtocolFee(MAX_UINT256, sender=governance)
    with ape.reverts("ownable: caller is not the owner"):
        model_registry.setProtocolFee(100, sender=alice)
    assert model_registry.protocolFeeBps() == 0


def test_governance_transfer(registry, governance, alice, bob):
    model_id = register(registry, alice).return_value
    registry.transfer_ownership(bob, sender=governance)
    assert registry.owner() == bob
    with ape.reverts("ownable: caller is not the owner"):
        registry.setProtocolFee(0, sender=governance)
    with ape.reverts("ModelRegistry: caller is not the model owner"):
        registry.deactivate(model_id, sender=governance)
    registry.deactivate(model_id, sender=bob)
    assert not registry.getModel(model_id).active


def test_renounced_governance_cannot_deactivate(registry, governance, alice):
    model_id = register(registry, alice).return_value
    registry.renounce_ownership(sender=governance)
    assert registry.owner() == ZERO_ADDRESS
    with ape.reverts("ModelRegistry: caller is not the model owner"):
        registry.deactivate(model_id, sender=governance)
    with ape.reverts("ownable: caller is not the owner"):
        registry.setProtocolFee(0, sender=governance)
    registry.deactivate(model_id, sender=alice)


# ---------------------------------------------------------------- register


def test_register(registry, alice, chain):
    tx = register(registry, alice, sources=[(1, 2), (2, 1)], uri="ipfs://model")
    assert tx.return_value == 1
    assert [
        registry.ModelRegistered(
            modelId=1, owner=alice, adapterHash=ADAPTER, baseModelHash=BASE, price=PRICE, metadataURI="ipfs://model"
        )
    ] == tx.events.filter(registry.ModelRegistered)
    log = tx.events.filter(registry.ModelRegistered)[0]
    assert tuple(log.split) == SPLIT
    assert [tuple(s) for s in log.sources] == [(1, 2), (2, 1)]
    m = registry.getModel(1)
    assert (m.id, m.owner, m.baseModelHash, m.adapterHash) == (1, alice.address, BASE, ADAPTER)
    assert (m.price, tuple(m.split), m.metadataURI, m.active) == (PRICE, SPLIT, "ipfs://model", True)
    assert m.registeredAt == tx.timestamp
    assert [tuple(s) for s in registry.getSources(1)] == [(1, 2), (2, 1)]
    assert registry.modelCount() == 1


def test_register_ids_and_owners(registry, alice, bob):
    assert register(registry, alice).return_value == 1
    assert register(registry, bob, sources=[(2, 1)]).return_value == 2
    # The same adapter may be registered again (e.g. with another price): ids stay distinct.
    assert register(registry, alice).return_value == 3
    assert [m.owner for m in registry.getModels(0, 10)] == [alice.address, bob.address, alice.address]


@pytest.mark.parametrize(
    "split",
    [(10_000, 0, 0), (0, 10_000, 0), (0, 0, 10_000), (3_334, 3_333, 3_333)],
)
def test_register_valid_splits(registry, alice, split):
    model_id = register(registry, alice, split=split).return_value
    assert tuple(registry.getModel(model_id).split) == split


def test_register_zero_price(registry, alice):
    model_id = register(registry, alice, price=0).return_value
    assert registry.getModel(model_id).price == 0


def test_register_empty_hashes(registry, alice):
    with ape.reverts("ModelRegistry: empty base model hash"):
        register(registry, alice, base=EMPTY_BYTES32)
    with ape.reverts("ModelRegistry: empty adapter hash"):
        register(registry, alice, adapter=EMPTY_BYTES32)
    # The base model hash is checked first.
    with ape.reverts("ModelRegistry: empty base model hash"):
        register(registry, alice, base=EMPTY_BYTES32, adapter=EMPTY_BYTES32)


def test_register_no_sources(registry, alice):
    with ape.reverts("ModelRegistry: no datanet versions"):
        register(registry, alice, sources=[])


@pytest.mark.parametrize("split", [(7_000, 2_000, 999), (7_000, 2_000, 1_001), (0, 0, 0), (3_333, 3_333, 3_333)])
def test_register_split_must_sum(registry, alice, split):
    with ape.reverts("ModelRegistry: split must sum to 10000"):
        register(registry, alice, split=split)


@pytest.mark.parametrize(
    "sources",
    [
        [(1, 0)],  # versions are 1-based
        [(1, 3)],  # Datanet 1 has two versions
        [(3, 1)],  # Datanet 3 has none
        [(99, 1)],  # no such Datanet
        [(0, 0)],
        [(1, 1), (3, 1)],  # a bad source after a good one
    ],
)
def test_register_unknown_datanet_version(registry, alice, sources):
    with ape.reverts("ModelRegistry: unknown datanet version"):
        register(registry, alice, sources=sources)


@pytest.mark.parametrize("sources", [[(1, 1), (1, 2)], [(1, 2), (1, 2)], [(1, 1), (2, 1), (1, 1)]])
def test_register_duplicate_datanet(registry, alice, sources):
    with ape.reverts("ModelRegistry: datanet named twice"):
        register(registry, alice, sources=sources)


def test_register_check_order(registry, alice):
    # A version that does not exist is reported before a repeat at a later index.
    with ape.reverts("ModelRegistry: unknown datanet version"):
        register(registry, alice, sources=[(1, 1), (1, 3)])
    with ape.reverts("ModelRegistry: datanet named twice"):
        register(registry, alice, sources=[(1, 1), (1, 2), (3, 1)])
    # The split is checked before the sources.
    with ape.reverts("ModelRegistry: split must sum to 10000"):
        register(registry, alice, sources=[(3, 1)], split=(1, 1, 1))
    assert registry.modelCount() == 0


def test_register_sees_new_versions(registry, datanet_registry, alice, carol, published):
    with ape.reverts("ModelRegistry: unknown datanet version"):
        register(registry, alice, sources=[(published.d3, 1)])
    publish_version(datanet_registry, published.d3, carol, ["d3-a"])
    model_id = register(registry, alice, sources=[(published.d3, 1)]).return_value
    assert [tuple(s) for s in registry.getSources(model_id)] == [(published.d3, 1)]


# ---------------------------------------------------------------- price and deactivation


def test_set_price(registry, alice):
    model_id = register(registry, alice).return_value
    tx = registry.setPrice(model_id, 3 * PRICE, sender=alice)
    assert [registry.PriceUpdated(modelId=model_id, oldPrice=PRICE, newPrice=3 * PRICE)] == tx.events.filter(
        registry.PriceUpdated
    )
    assert registry.getModel(model_id).price == 3 * PRICE
    registry.setPrice(model_id, 0, sender=alice)
    assert registry.getModel(model_id).price == 0


def test_set_price_owner_only(registry, governance, alice, bob):
    model_id = register(registry, alice).return_value
    with ape.reverts("ModelRegistry: caller is not the model owner"):
        registry.setPrice(model_id, 1, sender=bob)
    with ape.reverts("ModelRegistry: caller is not the model owner"):
        registry.setPrice(model_id, 1, sender=governance)  # governance may deactivate, not reprice
    for bad in (0, model_id + 1):
        with ape.reverts("ModelRegistry: unknown model"):
            registry.setPrice(bad, 1, sender=alice)
    assert registry.getModel(model_id).price == PRICE


def test_set_price_inactive_model(registry, alice):
    model_id = register(registry, alice).return_value
    registry.deactivate(model_id, sender=alice)
    with ape.reverts("ModelRegistry: model is inactive"):
        registry.setPrice(model_id, 1, sender=alice)
    assert registry.getModel(model_id).price == PRICE


@pytest.mark.parametrize("by_governance", [False, True], ids=["owner", "governance"])
def test_deactivate(registry, governance, alice, by_governance):
    model_id = register(registry, alice).return_value
    sender = governance if by_governance else alice
    tx = registry.deactivate(model_id, sender=sender)
    assert [registry.ModelDeactivated(modelId=model_id)] == tx.events.filter(registry.ModelDeactivated)
    assert not registry.getModel(model_id).active
    for anyone in (alice, governance):
        with ape.reverts("ModelRegistry: model is inactive"):
            registry.deactivate(model_id, sender=anyone)


def test_deactivate_reverts(registry, alice, bob):
    model_id = register(registry, alice).return_value
    with ape.reverts("ModelRegistry: caller is not the model owner"):
        registry.deactivate(model_id, sender=bob)
    for bad in (0, model_id + 1):
        with ape.reverts("ModelRegistry: unknown model"):
            registry.deactivate(bad, sender=alice)
    assert registry.getModel(model_id).active


def test_deactivation_is_per_model(registry, alice, bob):
    first = register(registry, alice).return_value
    second = register(registry, bob).return_value
    registry.deactivate(first, sender=alice)
    assert [m.active for m in registry.getModels(0, 10)] == [False, True]
    registry.setPrice(second, 1, sender=bob)


# ---------------------------------------------------------------- views


def test_unknown_model_views(registry, alice):
    register(registry, alice)
    for bad in (0, 2, MAX_UINT256):
        with ape.reverts("ModelRegistry: unknown model"):
            registry.getModel(bad)
        with ape.reverts("ModelRegistry: unknown model"):
            registry.getSources(bad)


def test_get_models_paging(registry, alice, bob):
    assert list(registry.getModels(0, 10)) == []
    for i in range(5):
        register(registry, alice if i % 2 == 0 else bob, price=i)
    assert [m.id for m in registry.getModels(0, 10)] == [1, 2, 3, 4, 5]
    assert [m.price for m in registry.getModels(0, 10)] == [0, 1, 2, 3, 4]
    assert [m.id for m in registry.getModels(1, 2)] == [2, 3]
    assert [m.id for m in registry.getModels(3, 100)] == [4, 5]
    assert [m.id for m in registry.getModels(0, MAX_UINT256)] == [1, 2, 3, 4, 5]
    assert list(registry.getModels(5, 10)) == []
    assert list(registry.getModels(9, 10)) == []
    assert list(registry.getModels(MAX_UINT256, 10)) == []
    assert list(registry.getModels(0, 0)) == []


# ---------------------------------------------------------------- stateful: the registry against a Python model

N_USERS = 4  # model owners; governance acts too
GOVERNANCE = N_USERS  # index of governance in the machine's account list
CANDIDATE_SOURCES = [(d, v) for d in (1, 2, 3) for v in (1, 2, 3)] + [(4, 1), (1, 0)]
VALID_SPLITS = [SPLIT, (10_000, 0, 0), (0, 5_000, 5_000)]
BAD_SPLITS = [(0, 0, 0), (5_000, 5_000, 1)]
FEES = [0, 1, 500, MAX_PROTOCOL_FEE_BPS] * 2 + [MAX_PROTOCOL_FEE_BPS + 1, 10_000]
REF = st.integers(0, 10**6)
MODEL_PICK = st.sampled_from(["active"] * 6 + ["any", "unknown"])


@dataclass
class ModelRecord:
    owner: int
    base: bytes
    adapter: bytes
    price: int
    split: tuple[int, int, int]
    sources: list[tuple[int, int]]
    uri: str
    registered_at: int
    active: bool = True


class ModelRegistryMachine(RuleBasedStateMachine):
    """Random registrations, repricing, deactivations and fee changes against a Python model of the registry."""

    def __init__(self, env: SimpleNamespace):
        super().__init__()
        self.chain, self.registry, self.datanets = env.chain, env.registry, env.datanet_registry
        self.accounts = [*env.users, env.governance]
        self.datanet_owners = env.datanet_owners  # datanet id -> account
        self.snapshot_id = self.chain.snapshot()
        self.versions = dict(env.versions)  # datanet id -> number of published versions
        self.protocol_fee = self.registry.protocolFeeBps()
        self.models: list[ModelRecord] = []
        self.published_labels = 0

    def teardown(self):
        self.chain.restore(self.snapshot_id)

    def _model(self, pick: str, ref: int) -> int:
        if pick == "unknown" or not self.models:
            return 0 if ref % 2 else len(self.models) + 1
        candidates = list(range(1, len(self.models) + 1))
        if pick == "active":
            candidates = [i for i in candidates if self.models[i - 1].active] or candidates
        return candidates[ref % len(candidates)]

    def _version_exists(self, d: int, v: int) -> bool:
        return 0 < v <= self.versions.get(d, 0)

    def _expected_register_error(self, base, adapter, sources, split) -> str | None:
        if base == EMPTY_BYTES32:
            return "ModelRegistry: empty base model hash"
        if adapter == EMPTY_BYTES32:
            return "ModelRegistry: empty adapter hash"
        if not sources:
            return "ModelRegistry: no datanet versions"
        if sum(split) != 10_000:
            return "ModelRegistry: split must sum to 10000"
        for i, (d, v) in enumerate(sources):
            if not self._version_exists(d, v):
                return "ModelRegistry: unknown datanet version"
            if any(other == d for other, _ in sources[:i]):
                return "ModelRegistry: datanet named twice"
        return None

    def _register(self, who, variant, ref, split, price):
        published = sorted(d for d, n in self.versions.items() if n > 0)
        # A valid choice of sources: one to all published Datanets, each at one of its versions.
        chosen = published[ref % len(published) :] or published
        sources = [(d, 1 + (ref // (d + 1)) % self.versions[d]) for d in chosen]
        base, adapter = content_hash(f"base-{who}"), content_hash(f"adapter-{len(self.models)}")
        if variant == "empty base":
            base = EMPTY_BYTES32
        elif variant == "empty adapter":
            adapter = EMPTY_BYTES32
        elif variant == "no sources":
            sources = []
        elif variant == "bad split":
            split = BAD_SPLITS[ref % len(BAD_SPLITS)]
        elif variant == "unknown version":
            unknown = [c for c in CANDIDATE_SOURCES if not self._version_exists(*c)]
            sources.insert(ref % (len(sources) + 1), unknown[ref % len(unknown)])
        elif variant == "named twice":
            sources.insert(ref % (len(sources) + 1), (sources[0][0], 1))
        uri = f"ipfs://model-{len(self.models) + 1}"
        sender = self.accounts[who]
        if err := self._expected_register_error(base, adapter, sources, split):
            with ape.reverts(err):
                self.registry.register(base, adapter, sources, price, split, uri, sender=sender)
            return
        tx = self.registry.register(base, adapter, sources, price, split, uri, sender=sender)
        assert tx.return_value == len(self.models) + 1
        self.models.append(ModelRecord(who, base, adapter, price, split, sources, uri, tx.timestamp))

    # ------------------------------------------------------------ rules

    @initialize(
        seeds=st.lists(
            st.tuples(st.integers(0, N_USERS - 1), REF, st.sampled_from(VALID_SPLITS)), min_size=1, max_size=3
        )
    )
    def seed_models(self, seeds):
        """Start every run with a few valid models."""
        for who, ref, split in seeds:
            self._register(who, "ok", ref, split, PRICE)

    @rule(
        who=st.integers(0, N_USERS - 1),
        variant=st.sampled_from(
            ["ok"] * 6 + ["empty base", "empty adapter", "no sources", "bad split", "unknown version", "named twice"]
        ),
        ref=REF,
        split=st.sampled_from(VALID_SPLITS),
        price=st.sampled_from([0, 1, PRICE, ONE]),
    )
    def register(self, who, variant, ref, split, price):
        self._register(who, variant, ref, split, price)

    @precondition(lambda self: self.models)
    @rule(
        role=st.sampled_from(["owner"] * 6 + ["governance", "anyone"]),
        pick=MODEL_PICK,
        ref=REF,
        price=st.sampled_from([0, 7, PRICE, ONE]),
    )
    def set_price(self, role, pick, ref, price):
        model_id = self._model(pick, ref)
        record = self.models[model_id - 1] if 0 < model_id <= len(self.models) else None
        who = {"owner": record.owner if record else 0, "governance": GOVERNANCE}.get(role, ref % len(self.accounts))
        err = None
        if record is None:
            err = "ModelRegistry: unknown model"
        elif record.owner != who:
            err = "ModelRegistry: caller is not the model owner"
        elif not record.active:
            err = "ModelRegistry: model is inactive"
        if err:
            with ape.reverts(err):
                self.registry.setPrice(model_id, price, sender=self.accounts[who])
            return
        tx = self.registry.setPrice(model_id, price, sender=self.accounts[who])
        assert [self.registry.PriceUpdated(modelId=model_id, oldPrice=record.price, newPrice=price)] == (
            tx.events.filter(self.registry.PriceUpdated)
        )
        record.price = price

    @precondition(lambda self: self.models)
    @rule(role=st.sampled_from(["owner"] * 3 + ["governance"] * 2 + ["anyone"]), pick=MODEL_PICK, ref=REF)
    def deactivate(self, role, pick, ref):
        model_id = self._model(pick, ref)
        record = self.models[model_id - 1] if 0 < model_id <= len(self.models) else None
        who = {"owner": record.owner if record else 0, "governance": GOVERNANCE}.get(role, ref % len(self.accounts))
        err = None
        if record is None:
            err = "ModelRegistry: unknown model"
        elif who not in (record.owner, GOVERNANCE):
            err = "ModelRegistry: caller is not the model owner"
        elif not record.active:
            err = "ModelRegistry: model is inactive"
        if err:
            with ape.reverts(err):
                self.registry.deactivate(model_id, sender=self.accounts[who])
            return
        self.registry.deactivate(model_id, sender=self.accounts[who])
        record.active = False

    @rule(by_governance=st.sampled_from([True] * 6 + [False]), fee=st.sampled_from(FEES), who=REF)
    def set_protocol_fee(self, by_governance, fee, who):
        sender = GOVERNANCE if by_governance else who % N_USERS
        err = None
        if not by_governance:
            err = "ownable: caller is not the owner"
        elif fee > MAX_PROTOCOL_FEE_BPS:
            err = "ModelRegistry: protocol fee above bound"
        if err:
            with ape.reverts(err):
                self.registry.setProtocolFee(fee, sender=self.accounts[sender])
            return
        self.registry.setProtocolFee(fee, sender=self.accounts[sender])
        self.protocol_fee = fee

    @rule(d=st.sampled_from([1, 2, 3]))
    def publish_version(self, d):
        """A Datanet publishes a new version, which models may name from now on."""
        self.published_labels += 1
        version = publish_version(self.datanets, d, self.datanet_owners[d], [f"extra-{d}-{self.published_labels}"])
        self.versions[d] = self.versions.get(d, 0) + 1
        assert version == self.versions[d]

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_matches_model(self):
        registry = self.registry
        assert registry.protocolFeeBps() == self.protocol_fee
        onchain = registry.getModels(0, 100)
        assert len(onchain) == len(self.models)
        for model_id, (m, record) in enumerate(zip(onchain, self.models, strict=True), start=1):
            assert (m.id, m.owner, m.baseModelHash, m.adapterHash) == (
                model_id,
                self.accounts[record.owner].address,
                record.base,
                record.adapter,
            )
            assert (m.price, tuple(m.split), m.metadataURI, m.active, m.registeredAt) == (
                record.price,
                record.split,
                record.uri,
                record.active,
                record.registered_at,
            )
            # The training data a model names never changes, and always names published versions.
            assert [tuple(s) for s in registry.getSources(model_id)] == record.sources
            assert all(self._version_exists(d, v) for d, v in record.sources)


def test_model_registry_stateful(
    chain, model_registry, datanet_registry, published, users, governance, alice, bob, carol
):
    owners = {published.d1: alice, published.d2: bob, published.d3: carol}
    env = SimpleNamespace(
        chain=chain,
        registry=model_registry,
        datanet_registry=datanet_registry,
        users=users[:N_USERS],
        governance=governance,
        datanet_owners=owners,
        versions={published.d1: 2, published.d2: 1, published.d3: 0},
    )
    run_state_machine_as_test(
        lambda: ModelRegistryMachine(env),
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
