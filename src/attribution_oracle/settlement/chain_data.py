"""Read what a report needs from the chain: served inferences with their pools, training data, past reports."""

from __future__ import annotations

from dataclasses import dataclass

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.event_decoding import fetch_events
from attribution_oracle.chain.reads import ChainReader
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.settlement.allocation import AttributedContribution, ServedInference


@dataclass(frozen=True)
class PartyShare:
    """What one account received from a set of served inferences, and in which role."""

    account: str
    role: str  # "data" (contributors and Datanet owners, by the report), "model owner", "treasury"
    amount: int


@dataclass(frozen=True)
class Submission:
    """A report accepted on-chain."""

    epoch: int
    report_uri: str
    rewards_root: bytes
    total_cumulative: int
    block_number: int


def served_inferences(
    client: ChainClient, deployment: Deployment, from_block: int, to_block: int
) -> list[ServedInference]:
    """Inferences marked served in ``[from_block, to_block]``, with their pools: fixed when they were paid
    (``FeeSplit``), or for a per-token request those of the charged amount (``InferenceCharged``)."""
    market = client.contract(deployment, "InferenceMarket")
    served = [
        e["args"]["requestId"]
        for e in fetch_events(client, [market], from_block, to_block)
        if e["event"] == "InferenceServed"
    ]
    if not served:
        return []
    wanted = set(served)
    paid: dict[int, dict] = {}
    splits: dict[int, dict] = {}
    for event in fetch_events(client, [market], deployment.block_number, to_block):
        request_id = event["args"].get("requestId")
        if request_id in wanted:
            if event["event"] == "InferencePaid":
                paid[request_id] = event["args"]
            elif event["event"] == "FeeSplit" and request_id not in splits:
                splits[request_id] = event["args"]
            elif event["event"] == "InferenceCharged":
                # a per-token request: the pools are those of the amount actually charged, not of the maximum
                splits[request_id] = event["args"]
    return [
        ServedInference(
            request_id=r,
            model_id=paid[r]["modelId"],
            contributors_amount=splits[r]["contributorsAmount"],
            datanet_owners_amount=splits[r]["datanetOwnersAmount"],
        )
        for r in sorted(wanted)
    ]


def training_data(
    client: ChainClient, deployment: Deployment, model_id: int
) -> tuple[list[AttributedContribution], dict[int, str]]:
    """The contributions in the Datanet versions a model was trained on, and those Datanets' owners."""
    reader = ChainReader(client, deployment)
    contributions: list[AttributedContribution] = []
    owners: dict[int, str] = {}
    for datanet_id, version in reader.model_sources(model_id):
        owners[datanet_id] = reader.datanet(datanet_id).owner
        count = reader.version(datanet_id, version).count
        for c in reader.approved_contributions(datanet_id, count):
            contributions.append(AttributedContribution(str(c.contribution_id), c.contributor, datanet_id))
    return contributions, owners


def submissions(client: ChainClient, deployment: Deployment) -> list[Submission]:
    """Every report accepted by the RewardDistributor and not vetoed, oldest first."""
    distributor = client.contract(deployment, "RewardDistributor")
    head = client.block("latest")["number"]
    events = fetch_events(client, [distributor], deployment.block_number, head)
    vetoed = {e["args"]["epoch"] for e in events if e["event"] == "ReportVetoed"}
    return [
        Submission(
            epoch=e["args"]["epoch"],
            report_uri=e["args"]["reportURI"],
            rewards_root=e["args"]["rewardsRoot"],
            total_cumulative=e["args"]["totalCumulative"],
            block_number=e["blockNumber"],
        )
        for e in events
        if e["event"] == "ReportSubmitted" and e["args"]["epoch"] not in vetoed
    ]


def receipts(client: ChainClient, deployment: Deployment, request_ids: list[int]) -> list[dict]:
    """Rebuild the InferenceMarket ``Receipt`` structs of requests from their InferencePaid and FeeSplit events."""
    market = client.contract(deployment, "InferenceMarket")
    wanted = set(request_ids)
    paid: dict[int, dict] = {}
    splits: dict[int, dict] = {}
    head = client.block("latest")["number"]
    for event in fetch_events(client, [market], deployment.block_number, head):
        request_id = event["args"].get("requestId")
        if request_id in wanted and event["event"] == "InferencePaid":
            paid[request_id] = event["args"]
        elif request_id in wanted and event["event"] == "FeeSplit":
            splits[request_id] = event["args"]
    missing = sorted(wanted - paid.keys())
    if missing:
        from attribution_oracle.chain.chain_errors import ChainError

        raise ChainError(f"unknown request {missing[0]} (no InferencePaid event)")
    return [
        {
            "requestId": r,
            "payer": paid[r]["payer"],
            "modelId": paid[r]["modelId"],
            "modelOwner": splits[r]["modelOwner"],
            "fee": paid[r]["fee"],
            "paidAt": splits[r]["paidAt"],
            "split": {
                "protocol": splits[r]["protocolFee"],
                "owner": splits[r]["ownerAmount"],
                "datanetOwners": splits[r]["datanetOwnersAmount"],
                "contributors": splits[r]["contributorsAmount"],
            },
        }
        for r in request_ids
    ]


def every_party(
    client: ChainClient, deployment: Deployment, request_ids: list[int], data_shares: dict[str, int]
) -> list[PartyShare]:
    """Every party's share of the fees of ``request_ids``: the report's data shares (contributors and Datanet
    owners), each model owner's share (withdrawable earnings) and the protocol fee (treasury). The amounts add
    up to exactly what the payers paid; most first."""
    totals: dict[tuple[str, str], int] = {}
    for account, amount in data_shares.items():
        totals[(account, "data")] = totals.get((account, "data"), 0) + amount
    if request_ids:
        treasury = client.call(client.contract(deployment, "InferenceMarket").functions.treasury())
        for r in receipts(client, deployment, request_ids):
            owner_key, treasury_key = (r["modelOwner"], "model owner"), (treasury, "treasury")
            totals[owner_key] = totals.get(owner_key, 0) + r["split"]["owner"]
            totals[treasury_key] = totals.get(treasury_key, 0) + r["split"]["protocol"]
    parties = [PartyShare(account, role, amount) for (account, role), amount in totals.items()]
    return sorted(parties, key=lambda p: (-p.amount, p.role, p.account))
