"""DatanetRegistry against a Python model: a hypothesis state machine over every call, good and bad."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace

import ape
from contract_helpers import (
    EMPTY_BYTES32,
    ONE,
    STATUS_APPROVED,
    STATUS_PENDING,
    STATUS_REJECTED,
    STATUS_SLASHED,
    STATUS_WITHDRAWN,
    content_hash,
)
from datanet_registry_helpers import MAX_PAGE
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

# ---------------------------------------------------------------- stateful: the registry against a Python model

POOL = [content_hash(f"pool-{i}") for i in range(10)]  # a small pool, so duplicates come up
STAKES = [0, 50, 100, ONE]
SECOND_MIN_STAKE = 100
MAX_DATANETS = 4
N_USERS = 6

# Choices are drawn as roles and references that the machine resolves against its model, so most calls are
# meaningful (a pending contribution, its Datanet's owner) while every kind of bad call still comes up.
ANYONE = st.integers(0, N_USERS - 1)
REF = st.integers(0, 10**6)
DATANET_KIND = st.sampled_from(["known"] * 7 + ["unknown"])
CURATE_ROLE = st.sampled_from(["owner", "curator"] * 3 + ["anyone"])
WITHDRAW_ROLE = st.sampled_from(["contributor"] * 4 + ["anyone"])
CONTRIBUTION_PICK = st.sampled_from(["pending"] * 6 + ["any", "unknown"])
DECISION = st.sampled_from(["approve"] * 3 + ["reject", "slash"])
STAKE_KIND = st.sampled_from(["min", "above"] * 2 + ["zero", "large", "below"])
PUBLISH_MODE = st.sampled_from(["ready"] * 5 + ["stale", "over", "under", "empty root", "anyone", "unknown"])
CONFIGURE = st.sampled_from(["curator on", "curator off", "min stake", "not owner", "unknown"])


@dataclass
class ModelContribution:
    id: int
    datanet: int
    contributor: int
    content_hash: bytes
    stake: int
    status: int = STATUS_PENDING


@dataclass
class ModelVersion:
    root: bytes
    count: int
    manifest: str
    published_at: int


@dataclass
class ModelDatanet:
    owner: int
    min_stake: int
    curators: set[int] = field(default_factory=set)
    contributions: list[int] = field(default_factory=list)  # ids in submission order
    approved: list[bytes] = field(default_factory=list)  # content hashes in approval order
    versions: list[ModelVersion] = field(default_factory=list)
    holder: dict[bytes, int] = field(default_factory=dict)  # hash -> id while pending / approved / slashed


class DatanetRegistryMachine(RuleBasedStateMachine):
    """Random calls by random accounts; every call must succeed or revert exactly as the model says."""

    def __init__(self, env: SimpleNamespace):
        super().__init__()
        self.chain, self.registry, self.token = env.chain, env.registry, env.token
        self.users, self.treasury = env.users, env.treasury
        self.snapshot_id = self.chain.snapshot()
        self.treasury_balance = self.token.balanceOf(self.treasury)
        self.fee = self.registry.creationFee()
        self.datanets: dict[int, ModelDatanet] = {}
        for owner, min_stake, curator in env.initial_datanets:
            self.datanets[len(self.datanets) + 1] = ModelDatanet(owner, min_stake, {curator})
        self.contributions: dict[int, ModelContribution] = {}

    def teardown(self):
        self.chain.restore(self.snapshot_id)

    # ------------------------------------------------------------ resolving choices

    def _datanet(self, kind: str, ref: int) -> int:
        if kind == "unknown":
            return 0 if ref % 2 else len(self.datanets) + 1
        return 1 + ref % len(self.datanets)

    def _contribution(self, pick: str, ref: int) -> int:
        candidates = list(self.contributions)
        if pick == "pending":
            candidates = [cid for cid in candidates if self.contributions[cid].status == STATUS_PENDING]
        if pick == "unknown" or not candidates:
            return 0 if ref % 2 else len(self.contributions) + 1
        return candidates[ref % len(candidates)]

    def _account(self, role: str, d: int, ref: int, contributor: int | None = None) -> int:
        model = self.datanets.get(d)
        if role == "owner" and model:
            return model.owner
        if role == "curator" and model and model.curators:
            curators = sorted(model.curators)
            return curators[ref % len(curators)]
        if role == "contributor" and contributor is not None:
            return contributor
        return (ref // 7) % N_USERS

    def _publishable(self) -> list[int]:
        return [
            d
            for d, model in self.datanets.items()
            if model.approved and (not model.versions or model.versions[-1].count < len(model.approved))
        ]

    def _has_pending(self) -> bool:
        return any(c.status == STATUS_PENDING for c in self.contributions.values())

    # ------------------------------------------------------------ expected reverts

    def _pending_error(self, cid: int) -> str | None:
        if cid not in self.contributions:
            return "DatanetRegistry: unknown contribution"
        if self.contributions[cid].status != STATUS_PENDING:
            return "DatanetRegistry: contribution is not pending"
        return None

    def _owner_error(self, who: int, d: int) -> str | None:
        if d not in self.datanets:
            return "DatanetRegistry: unknown datanet"
        if self.datanets[d].owner != who:
            return "DatanetRegistry: caller is not the datanet owner"
        return None

    def _curate_error(self, who: int, cid: int) -> str | None:
        if err := self._pending_error(cid):
            return err
        d = self.datanets[self.contributions[cid].datanet]
        if who != d.owner and who not in d.curators:
            return "DatanetRegistry: caller is not a curator"
        return None

    def _check_holder(self, d: int, h: bytes):
        assert self.registry.contributionIdOf(d, h) == self.datanets[d].holder.get(h, 0)

    # ------------------------------------------------------------ rules

    @initialize(
        seeds=st.lists(
            st.tuples(ANYONE, st.integers(1, 2), st.integers(0, len(POOL) - 1), st.booleans()),
            min_size=2,
            max_size=8,
            unique_by=lambda seed: seed[1:3],
        ),
        publish_first=st.booleans(),
    )
    def seed(self, seeds, publish_first):
        """Start every run with valid contributions in the two initial Datanets, some approved (and published)."""
        for who, d, item, approve in seeds:
            model = self.datanets[d]
            stake = model.min_stake + 10
            self.registry.contribute(d, POOL[item], "file://seed", 1, stake, sender=self.users[who])
            cid = len(self.contributions) + 1
            self.contributions[cid] = ModelContribution(cid, d, who, POOL[item], stake)
            model.contributions.append(cid)
            model.holder[POOL[item]] = cid
            if approve:
                self.registry.approve(cid, sender=self.users[model.owner])
                model.approved.append(POOL[item])
                self.contributions[cid].status, self.contributions[cid].stake = STATUS_APPROVED, 0
        for d in self._publishable() if publish_first else []:
            model = self.datanets[d]
            root, count = MerkleTree(model.approved).root, len(model.approved)
            tx = self.registry.publishVersion(d, root, count, "ipfs://seed", sender=self.users[model.owner])
            model.versions.append(ModelVersion(root, count, "ipfs://seed", tx.timestamp))

    @precondition(lambda self: len(self.datanets) < MAX_DATANETS)
    @rule(who=ANYONE, min_stake=st.sampled_from(STAKES))
    def create_datanet(self, who, min_stake):
        tx = self.registry.createDatanet(f"datanet-{len(self.datanets) + 1}", "", min_stake, sender=self.users[who])
        assert tx.return_value == len(self.datanets) + 1
        self.datanets[tx.return_value] = ModelDatanet(who, min_stake)
        self.treasury_balance += self.fee

    @rule(what=CONFIGURE, ref=REF, account=ANYONE, min_stake=st.sampled_from(STAKES))
    def configure(self, what, ref, account, min_stake):
        """Appoint or remove a curator, or change the minimum stake (by the owner, or by someone else)."""
        d = self._datanet("unknown" if what == "unknown" else "known", ref)
        who = self._account("anyone" if what == "not owner" else "owner", d, ref)
        sender = self.users[who]
        if what in ("curator on", "curator off"):
            call = partial(self.registry.setCurator, d, self.users[account], what == "curator on", sender=sender)
        else:
            call = partial(self.registry.setMinStake, d, min_stake, sender=sender)
        if err := self._owner_error(who, d):
            with ape.reverts(err):
                call()
            return
        call()
        model = self.datanets[d]
        if what == "curator on":
            model.curators.add(account)
        elif what == "curator off":
            model.curators.discard(account)
        else:
            model.min_stake = min_stake
        assert self.registry.isCurator(d, self.users[account]) == (account in model.curators)

    @rule(who=ANYONE, kind=DATANET_KIND, ref=REF, item=st.integers(0, len(POOL) - 1), stake_kind=STAKE_KIND)
    def contribute(self, who, kind, ref, item, stake_kind):
        d = self._datanet(kind, ref)
        h, sender = POOL[item], self.users[who]
        model = self.datanets.get(d)
        minimum = model.min_stake if model else 0
        stake = {"min": minimum, "above": minimum + 50, "zero": 0, "large": ONE, "below": max(0, minimum - 1)}[
            stake_kind
        ]
        err = None
        if model is None:
            err = "DatanetRegistry: unknown datanet"
        elif stake < minimum:
            err = "DatanetRegistry: stake below minimum"
        elif h in model.holder:
            err = "DatanetRegistry: duplicate content"
        if err:
            with ape.reverts(err):
                self.registry.contribute(d, h, "file://blob", 1, stake, sender=sender)
            return
        tx = self.registry.contribute(d, h, "file://blob", 1, stake, sender=sender)
        cid = len(self.contributions) + 1
        assert tx.return_value == cid
        self.contributions[cid] = ModelContribution(cid, d, who, h, stake)
        model.contributions.append(cid)
        model.holder[h] = cid
        self._check_holder(d, h)

    @precondition(lambda self: self._has_pending())
    @rule(role=CURATE_ROLE, pick=CONTRIBUTION_PICK, ref=REF, decision=DECISION)
    def curate(self, role, pick, ref, decision):
        """Approve, reject or slash a contribution (usually a pending one, by its owner or a curator)."""
        cid = self._contribution(pick, ref)
        who = self._account(role, self.contributions[cid].datanet if cid in self.contributions else 0, ref)
        sender = self.users[who]
        if decision == "approve":
            call = partial(self.registry.approve, cid, sender=sender)
        else:
            call = partial(self.registry.reject, cid, decision == "slash", sender=sender)
        if err := self._curate_error(who, cid):
            with ape.reverts(err):
                call()
            return
        c = self.contributions[cid]
        model = self.datanets[c.datanet]
        contributor = self.users[c.contributor]
        contributor_before = self.token.balanceOf(contributor)
        tx = call()
        if decision == "approve":
            assert [
                self.registry.ContributionApproved(
                    contributionId=cid, curator=sender, approvalIndex=len(model.approved), stakeReturned=c.stake
                )
            ] == tx.events.filter(self.registry.ContributionApproved)
            model.approved.append(c.content_hash)
            c.status = STATUS_APPROVED
        elif decision == "reject":
            c.status = STATUS_REJECTED
            del model.holder[c.content_hash]
        else:
            assert [
                self.registry.ContributionRejected(contributionId=cid, malicious=True, stakeSlashed=c.stake)
            ] == tx.events.filter(self.registry.ContributionRejected)
            self.treasury_balance += c.stake
            c.status = STATUS_SLASHED
        returned = 0 if decision == "slash" else c.stake
        assert self.token.balanceOf(contributor) - contributor_before == returned
        c.stake = 0
        self._check_holder(c.datanet, c.content_hash)

    @precondition(lambda self: self._has_pending())
    @rule(role=WITHDRAW_ROLE, pick=CONTRIBUTION_PICK, ref=REF)
    def withdraw(self, role, pick, ref):
        cid = self._contribution(pick, ref)
        contributor = self.contributions[cid].contributor if cid in self.contributions else None
        who = self._account(role, 0, ref, contributor)
        err = self._pending_error(cid)
        if err is None and contributor != who:
            err = "DatanetRegistry: not the contributor"
        if err:
            with ape.reverts(err):
                self.registry.withdraw(cid, sender=self.users[who])
            return
        c = self.contributions[cid]
        before = self.token.balanceOf(self.users[who])
        self.registry.withdraw(cid, sender=self.users[who])
        assert self.token.balanceOf(self.users[who]) - before == c.stake
        c.status, c.stake = STATUS_WITHDRAWN, 0
        del self.datanets[c.datanet].holder[c.content_hash]
        self._check_holder(c.datanet, c.content_hash)

    @rule(mode=PUBLISH_MODE, ref=REF)
    def publish(self, mode, ref):
        """Publish a version: usually the right count and root by the owner, sometimes every kind of wrong call."""
        ready = self._publishable() or [d for d, model in self.datanets.items() if model.versions]
        if mode == "ready" and ready:
            d = ready[ref % len(ready)]  # something new to publish, else a Datanet with nothing new
        else:
            d = self._datanet("unknown" if mode == "unknown" else "known", ref)
        who = self._account("anyone" if mode == "anyone" else "owner", d, ref)
        model = self.datanets.get(d)
        approved = model.approved if model else []
        count = len(approved) + {"over": 1, "under": -1}.get(mode, 0)
        if mode == "stale" and model and model.versions:
            count = model.versions[-1].count
        count = max(count, 0)
        if mode == "empty root":
            root = EMPTY_BYTES32
        elif 0 < count <= len(approved):
            root = MerkleTree(approved[:count]).root
        else:
            root = content_hash("not a real root")
        manifest = f"ipfs://{d}/{count}"
        err = self._owner_error(who, d)
        if err is None:
            if root == EMPTY_BYTES32:
                err = "DatanetRegistry: empty root"
            elif count != len(approved):
                err = "DatanetRegistry: count is not the approved count"
            elif model.versions and count <= model.versions[-1].count:
                err = "DatanetRegistry: nothing new to publish"
            elif count == 0:
                err = "DatanetRegistry: nothing approved"
        if err:
            with ape.reverts(err):
                self.registry.publishVersion(d, root, count, manifest, sender=self.users[who])
            return
        tx = self.registry.publishVersion(d, root, count, manifest, sender=self.users[who])
        assert tx.return_value == len(model.versions) + 1
        assert [
            self.registry.VersionPublished(datanetId=d, version=tx.return_value, merkleRoot=root, count=count)
        ] == tx.events.filter(self.registry.VersionPublished)
        model.versions.append(ModelVersion(root, count, manifest, tx.timestamp))

    @precondition(lambda self: any(model.versions for model in self.datanets.values()))
    @rule(ref=REF)
    def verify_proof(self, ref):
        """A Python proof of a version's leaf verifies on-chain; the same proof for another hash or version does not."""
        published = [d for d, model in self.datanets.items() if model.versions]
        d = published[ref % len(published)]
        model = self.datanets[d]
        v = 1 + ref % len(model.versions)
        leaves = model.approved[: model.versions[v - 1].count]
        tree = MerkleTree(leaves)
        i = ref % len(leaves)
        proof = tree.proof(i)
        assert self.registry.verifyContribution(d, v, leaves[i], proof)
        assert not self.registry.verifyContribution(d, len(model.versions) + 1, leaves[i], proof)
        outsiders = [h for h in POOL if h not in leaves]
        if outsiders:
            assert not self.registry.verifyContribution(d, v, outsiders[ref % len(outsiders)], proof)

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_matches_model(self):
        registry = self.registry
        pending = [c for c in self.contributions.values() if c.status == STATUS_PENDING]
        # The registry holds exactly the pending stakes; fees and slashes went to the treasury.
        assert self.token.balanceOf(registry) == sum(c.stake for c in pending)
        assert self.token.balanceOf(self.treasury) == self.treasury_balance

        onchain = registry.getDatanets(0, MAX_PAGE)
        assert len(onchain) == len(self.datanets)
        for d, record in enumerate(onchain, start=1):
            model = self.datanets[d]
            assert record.owner == self.users[model.owner].address
            assert record.minStake == model.min_stake
            assert record.contributionCount == len(model.contributions)
            assert record.approvedCount == len(model.approved)
            assert record.versionCount == len(model.versions)
            if not model.contributions:
                continue

            page = registry.getContributions(d, 0, MAX_PAGE)
            assert [(c.id, c.contributor, c.contentHash, c.stake, c.status) for c in page] == [
                (
                    cid,
                    self.users[self.contributions[cid].contributor].address,
                    self.contributions[cid].content_hash,
                    self.contributions[cid].stake,
                    self.contributions[cid].status,
                )
                for cid in model.contributions
            ]
            # No content hash is pending or approved twice in one Datanet.
            live = [c.contentHash for c in page if c.status in (STATUS_PENDING, STATUS_APPROVED)]
            assert len(live) == len(set(live))
            if not model.approved:
                continue

            # Only approved contributions are leaves, in approval order.
            approved = list(registry.getApprovedHashes(d, 0, MAX_PAGE))
            assert approved == model.approved
            assert set(approved) == {c.contentHash for c in page if c.status == STATUS_APPROVED}

            # Published versions never change and commit to the approved hashes in approval order.
            for v, expected in enumerate(model.versions, start=1):
                version = registry.getVersion(d, v)
                assert (version.merkleRoot, version.count, version.manifestURI, version.publishedAt) == (
                    expected.root,
                    expected.count,
                    expected.manifest,
                    expected.published_at,
                )
                assert version.merkleRoot == MerkleTree(approved[: version.count]).root


def test_datanet_registry_stateful(chain, datanet_registry, token, funded, create_datanet, treasury):
    users = funded
    initial = [(0, 0, 2), (1, SECOND_MIN_STAKE, 3)]  # (owner, min stake, curator) as indices into users
    for owner, min_stake, curator in initial:
        datanet_id = create_datanet(users[owner], min_stake)
        datanet_registry.setCurator(datanet_id, users[curator], True, sender=users[owner])
    env = SimpleNamespace(
        chain=chain,
        registry=datanet_registry,
        token=token,
        users=users,
        treasury=treasury,
        initial_datanets=initial,
    )
    run_state_machine_as_test(
        lambda: DatanetRegistryMachine(env),
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
