"""Build and verify epoch reports against the chain and the content store (used by the CLI and the oracle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError
from attribution_oracle.settlement.allocation import allocate
from attribution_oracle.settlement.chain_data import served_inferences, submissions, training_data
from attribution_oracle.settlement.epoch_report import InferenceShares, Report, build_report
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import CONTENT_URI_SCHEME

URI_PREFIX = CONTENT_URI_SCHEME


class SettlementError(UserError):
    """A report cannot be built, found or verified."""


def report_uri(digest: str) -> str:
    """The URI of a report stored in the content store."""
    return URI_PREFIX + digest


def load_report(store: BlobStore, uri: str) -> Report:
    """Load and self-check a report from the content store."""
    if not uri.startswith(URI_PREFIX):
        raise SettlementError(f"report URI {uri!r} is not a content-store URI ({URI_PREFIX}<sha256>)")
    digest = uri.removeprefix(URI_PREFIX)
    try:
        return Report.from_json(store.get(digest))
    except ValueError as exc:
        raise SettlementError(f"report {uri} is malformed: {exc}") from exc


def previous_report(client: ChainClient, deployment: Deployment, store: BlobStore) -> Report | None:
    """The last accepted (not vetoed) report, loaded from the content store."""
    done = submissions(client, deployment)
    return load_report(store, done[-1].report_uri) if done else None


def config_digest(client: ChainClient, deployment: Deployment) -> bytes:
    """The distributor's current config digest."""
    return bytes(client.call(client.contract(deployment, "RewardDistributor").functions.configDigest()))


@dataclass
class Built:
    """A report and where it is stored."""

    report: Report
    uri: str


def build_epoch_report(
    client: ChainClient,
    deployment: Deployment,
    store: BlobStore,
    *,
    epoch: int,
    scores: Mapping[int, Mapping[str, float]],
    to_block: int | None = None,
    retrieved: Mapping[int, Sequence[str]] | None = None,
) -> Built:
    """Build the next report from the chain (served inferences since the last report) and given scores.

    ``scores`` maps request id to ``{contribution id: score}``; a served request without scores gets the
    documented equal fallback. ``retrieved`` maps the request id of an inference served with retrieval to its
    retrieved contribution ids (rank order): its shares follow ``rag_scores`` and its leaf commits them. The report
    is stored in the content store; its URI is returned.
    """
    retrieved = retrieved or {}
    previous = previous_report(client, deployment, store)
    if previous is not None and epoch <= previous.epoch:
        raise SettlementError(f"epoch {epoch} must be greater than the last accepted report's {previous.epoch}")
    head = client.block("latest")["number"]
    to_block = head if to_block is None else to_block
    from_block = previous.to_block + 1 if previous else deployment.block_number
    if to_block < from_block or to_block > head:
        raise SettlementError(f"to-block {to_block} must lie between {from_block} and the head {head}")
    data_cache: dict[int, tuple] = {}
    inferences = []
    for served in served_inferences(client, deployment, from_block, to_block):
        if served.model_id not in data_cache:
            data_cache[served.model_id] = training_data(client, deployment, served.model_id)
        contributions, owners = data_cache[served.model_id]
        request_scores = {str(k): float(v) for k, v in scores.get(served.request_id, {}).items()}
        cited = tuple(dict.fromkeys(str(c) for c in retrieved.get(served.request_id, ())))
        try:
            shares = allocate(served, request_scores, contributions, owners, cited)
        except KeyError as exc:
            raise SettlementError(str(exc.args[0])) from exc
        inferences.append(InferenceShares(served.request_id, served.model_id, shares, request_scores, retrieved=cited))
    report = build_report(
        chain_id=client.chain_id,
        distributor=deployment.contracts["RewardDistributor"].address,
        config_digest=config_digest(client, deployment),
        epoch=epoch,
        from_block=from_block,
        to_block=to_block,
        inferences=inferences,
        previous=previous,
    )
    digest = store.put_bytes(report.canonical_json())
    return Built(report, report_uri(digest))


@dataclass
class Verification:
    """A report re-derived from public inputs: the checks, and the report the chain's inputs imply."""

    report: Report
    expected: Report
    checks: list[tuple[str, bool, str]]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(good for _, good, _ in self.checks)

    def differing_leaves(self) -> list[tuple[str, int, int]]:
        """``(account, reported, re-derived)`` for every cumulative rewards leaf that differs, by account."""
        accounts = sorted(set(self.report.rewards) | set(self.expected.rewards))
        return [
            (a, self.report.rewards.get(a, 0), self.expected.rewards.get(a, 0))
            for a in accounts
            if self.report.rewards.get(a, 0) != self.expected.rewards.get(a, 0)
        ]


def verify_report(
    client: ChainClient, deployment: Deployment, store: BlobStore, uri: str
) -> list[tuple[str, bool, str]]:
    """Re-derive a report from public inputs; returns ``(check, ok, detail)`` rows."""
    return rederive_report(client, deployment, store, uri).checks


def _rebuilt(report: Report, inferences: list, previous: Report | None) -> Report:
    """``report``'s epoch built again (same chain, distributor, config and blocks) from ``inferences``."""
    return build_report(
        chain_id=report.chain_id,
        distributor=report.distributor,
        config_digest=report.config_digest,
        epoch=report.epoch,
        from_block=report.from_block,
        to_block=report.to_block,
        inferences=inferences,
        previous=previous,
    )


def rederive_report(client: ChainClient, deployment: Deployment, store: BlobStore, uri: str) -> Verification:
    """Re-derive a report from public inputs (what ``report verify`` prints and the explorer shows).

    The re-derived report recomputes every served inference's shares from its scores and the chain's pools
    and training data, on top of the previous accepted report; its leaves are what the report should hold.
    """
    report = load_report(store, uri)
    checks: list[tuple[str, bool, str]] = [("roots and total match the contents", True, "")]
    accepted = {s.report_uri: s for s in submissions(client, deployment)}
    earlier = [s for s in accepted.values() if s.epoch < report.epoch]
    previous = load_report(store, earlier[-1].report_uri) if earlier else None
    expected = _rebuilt(report, report.inferences, previous)
    checks.append(("cumulative = previous report + this epoch", expected.rewards == report.rewards, ""))
    served = {s.request_id: s for s in served_inferences(client, deployment, report.from_block, report.to_block)}
    listed = {i.request_id for i in report.inferences}
    checks.append(
        ("exactly the inferences served in its blocks", listed == set(served), f"{len(listed)} vs {len(served)}")
    )
    mismatched = []
    rederived: list[InferenceShares] = []
    data_cache: dict[int, tuple] = {}
    for item in report.inferences:
        if item.request_id not in served:
            continue
        if item.model_id not in data_cache:
            data_cache[item.model_id] = training_data(client, deployment, item.model_id)
        contributions, owners = data_cache[item.model_id]
        try:
            shares = allocate(served[item.request_id], item.scores, contributions, owners, item.retrieved)
        except KeyError:  # scores or retrieved ids naming a contribution the model was not trained on
            mismatched.append(item.request_id)
            continue
        if shares != item.shares:
            mismatched.append(item.request_id)
        rederived.append(
            InferenceShares(item.request_id, item.model_id, shares, item.scores, item.fallback, item.retrieved)
        )
    checks.append(("every inference's shares follow from its scores", not mismatched, f"bad: {mismatched[:5]}"))
    onchain = accepted.get(uri)
    if onchain is None:
        checks.append(("accepted on-chain", False, "no ReportSubmitted with this URI"))
    else:
        same = onchain.rewards_root == report.rewards_root and onchain.total_cumulative == report.total_cumulative
        checks.append(("accepted on-chain with the same root and total", same, f"epoch {onchain.epoch}"))
    derived = _rebuilt(report, rederived, previous)
    return Verification(report, derived, checks)
