"""Multi-step agent tasks: a list of calls (model, prompt) run in order, each paid over x402, and who earned.

A task file is JSON: ``{"name": "...", "steps": [{"model": 1, "prompt": "...", "max_tokens": 24}, ...]}``; a step
may use ``"{previous}"`` in its prompt to feed in the previous answer. ``earnings`` reads, per call, how the
market split what was charged: protocol fee, model owner, the Datanet owners' pool and the contributors' pool
(the oracle then divides the contributors' pool by attribution).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from attribution_oracle.agent.paying_agent import Agent, AgentCall
from attribution_oracle.agent.vault import AgentVaultClient
from attribution_oracle.errors import UserError

__all__ = ["TaskStep", "load_task", "run_task", "CallEarnings", "earnings"]

STATUS = {0: "unknown", 1: "paid", 2: "served", 3: "refunded"}


@dataclass(frozen=True)
class TaskStep:
    """One call of a task."""

    model: int
    prompt: str
    max_tokens: int = 24


def load_task(path: Path) -> tuple[str, list[TaskStep]]:
    """Read a task file; ``UserError`` on a missing or malformed file."""
    try:
        data = json.loads(path.read_text())
        steps = [TaskStep(int(s["model"]), str(s["prompt"]), int(s.get("max_tokens", 24))) for s in data["steps"]]
    except OSError as exc:
        raise UserError(f"cannot read task file {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"task file {path} is not a task (JSON with steps of model, prompt): {exc}") from exc
    if not steps:
        raise UserError(f"task file {path} has no steps")
    return str(data.get("name", path.stem)), steps


def run_task(agent: Agent, steps: list[TaskStep], on_call=lambda step, call: None) -> list[AgentCall]:
    """Run the steps in order (``{previous}`` = the previous answer); stops at the first refused call."""
    calls: list[AgentCall] = []
    previous = ""
    for step in steps:
        prompt = step.prompt.replace("{previous}", previous.strip())
        call = agent.complete(step.model, prompt, max_tokens=step.max_tokens)
        calls.append(call)
        on_call(step, call)
        previous = call.text
    return calls


@dataclass(frozen=True)
class CallEarnings:
    """Who earned from one call, in wei (amounts of what was charged)."""

    request_id: int
    model_id: int
    status: str
    authorized: int
    charged: int
    protocol: int
    model_owner: str
    owner_amount: int
    datanet_owners: int
    contributors: int


def earnings(vault: AgentVaultClient, request_ids: list[int], wait_s: float = 0.0) -> list[CallEarnings]:
    """Per request, the split of what it was charged (waits up to ``wait_s`` for the requests to be served)."""
    market, client = vault.market, vault.client
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(client.call(market.functions.requestStatus(r)) == 1 for r in request_ids):
        time.sleep(0.5)
    out = []
    for request_id in request_ids:
        logs = {
            name: market.events[name]().get_logs(
                argument_filters={"requestId": request_id}, from_block=vault.deployment.block_number
            )
            for name in ("InferencePaid", "FeeSplit", "InferenceCharged")
        }
        if not logs["InferencePaid"]:
            raise UserError(f"request {request_id} was never paid")
        paid, split = logs["InferencePaid"][0]["args"], logs["FeeSplit"][0]["args"]
        amounts = logs["InferenceCharged"][0]["args"] if logs["InferenceCharged"] else split
        charged = amounts["charged"] if logs["InferenceCharged"] else paid["fee"]
        out.append(
            CallEarnings(
                request_id=request_id,
                model_id=paid["modelId"],
                status=STATUS[client.call(market.functions.requestStatus(request_id))],
                authorized=paid["fee"],
                charged=charged,
                protocol=amounts["protocolFee"],
                model_owner=split["modelOwner"],
                owner_amount=amounts["ownerAmount"],
                datanet_owners=amounts["datanetOwnersAmount"],
                contributors=amounts["contributorsAmount"],
            )
        )
    return out
