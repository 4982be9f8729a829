"""A small world for the explorer's browser tests and README screenshots, built by the real flow.

Real Anvil (started by `node start`), the real contracts (`deploy`), real CLI commands for tokens, a Datanet
(whose name and one contribution carry HTML markup), curation, publishing, ModelFactory training of a `tiny:0`
adapter, paying and marking served; records written as the server writes them (``ServedRecordStore``); scores
from the model's real scorer (``factory.scorer``, what `oracle run --scorer factory` uses); reports built,
signed 2 of 3 and submitted with `report build|sign|submit`. Epoch 2 is a tampered report: two colluding
oracles sign shares moved from one contributor to another, which `report verify` (and the explorer) catch.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from cli_harness import Cli, free_port, make_cli

from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.epoch_report import InferenceShares, build_report
from attribution_oracle.settlement.report_service import load_report, report_uri
from attribution_oracle.store.blobs import BlobStore

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "demo" / "corpus"
MARKUP = "<script>window.__pwned = 1</script><b>bold</b>"
TRAIN = ["--base", "tiny:0", "--steps", "4", "--batch-size", "2", "--seq-len", "64", "--proj-dim", "32",
         "--checkpoint-every", "2"]  # fmt: skip


@dataclass
class World:
    """What the tests need to know about the world."""

    home: Path
    rpc: str
    cli: Cli
    manifest: str
    served_log: Path
    quotes: dict[int, str]  # request id -> corpus passage its output quotes
    tampered_uri: str = ""
    honest_uri: str = ""


def _first_sentence(path: Path) -> str:
    text = path.read_text()
    return text.split(". ")[0].strip() + "."


def build_world(root: Path) -> World:
    """Start Anvil and build the world (see the module docstring); the caller runs ``world.cli("node", "stop")``."""
    home = root / "home"
    rpc = f"http://127.0.0.1:{free_port()}"
    ao = make_cli(home, rpc)
    ao("node", "start", "--fresh")
    ao("deploy", "--from", "dev:0", "--oracle-signer", "dev:7", "--oracle-signer", "dev:8", "--oracle-signer",
       "dev:9", "--threshold", "2", "--operator", "dev:6")  # fmt: skip
    for who in ("dev:1", "dev:2", "dev:3", "dev:4"):
        ao("token", "mint", who, "100", "--from", "dev:0")
    ao("token", "mint", "dev:5", "1000", "--from", "dev:0")
    ao("datanet", "create", f"Bees {MARKUP}", "--min-stake", "2", "--from", "dev:1")
    alice = sorted((CORPUS / "alice").iterdir())[:3]
    bob = sorted((CORPUS / "bob").iterdir())[:2]
    odd = root / "markup-note.txt"
    odd.write_text(f"Notes with markup {MARKUP} about smoke: cool smoke calms the guard bees at the entrance.\n")
    ao("datanet", "contribute", "1", *map(str, alice), "--from", "dev:2")
    ao("datanet", "contribute", "1", *map(str, bob), str(odd), "--from", "dev:3")
    ao("datanet", "approve", "1", "2", "3", "4", "5", "6", "--from", "dev:1")
    ao("datanet", "publish", "1", "--from", "dev:1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = ao.json("model", "train", "--datanet", "1", *TRAIN, "--register", "--price", "1",
                          "--split", "5000/4000/1000", "--from", "dev:4")  # fmt: skip
    world = World(home, rpc, ao, trained["manifest"], home / "served.sqlite", {})
    quotes = [_first_sentence(alice[0]), _first_sentence(bob[1]), _first_sentence(alice[2])]
    served = serve(world, [f"{MARKUP} How often should I inspect a hive?", "How far do bees fly?",
                           "Tell me about queen cells"], quotes)  # fmt: skip
    world.honest_uri = settle(world, 1, served)
    more = serve(world, ["When do I add a super?"], [_first_sentence(alice[1])])
    world.tampered_uri = settle(world, 2, more, tamper=True)
    return world


def serve(world: World, prompts: list[str], quotes: list[str]) -> list[int]:
    """Pay for ``prompts`` (dev:5), record outputs that quote ``quotes`` (plus markup), mark them served."""
    paid = world.cli.json("market", "pay", "1", *[a for p in prompts for a in ("--prompt", p)], "--from", "dev:5")
    store = ServedRecordStore(world.served_log)
    adapter = world.cli.json("model", "show", "1")
    adapter_hash = adapter.get("adapterHash") or adapter.get("adapter_hash") or "00" * 32
    ids = []
    for item, prompt, quote in zip(paid, prompts, quotes, strict=True):
        rid = int(item["requestId"])
        output = f"{quote} Also <i>{MARKUP}</i> — mind the bees."
        store.add(ServedRecord(rid, 1, str(adapter_hash), prompt, tuple(prompt.encode()), tuple(output.encode()),
                               output, float(rid)))  # fmt: skip
        world.quotes[rid] = quote
        ids.append(rid)
    world.cli("market", "serve", *map(str, ids), "--from", "dev:6")
    return ids


def _scorer_and_records(world: World):
    import torch

    from attribution_oracle.factory.scorer import load_model_scorer

    torch.set_num_threads(1)
    scorer = load_model_scorer(BlobStore(world.home / "blobs"), world.manifest, cache_dir=world.home / "scorer-cache")
    return scorer, ServedRecordStore(world.served_log)


def scores_of(world: World, request_ids: list[int]) -> dict[str, dict[str, float]]:
    """The real factory scorer's combined scores of the served records (what an oracle node computes)."""
    scorer, store = _scorer_and_records(world)
    result = {}
    for rid in request_ids:
        record = store.get(rid)
        result[str(rid)] = scorer.scores(record.prompt_token_ids, record.output_token_ids)
    return result


def signals_of(world: World, request_id: int) -> dict[str, dict[str, float]]:
    """The real factory scorer's separate sides (gradient, span, lexical) of one served record."""
    scorer, store = _scorer_and_records(world)
    record = store.get(request_id)
    return scorer.signals(record.prompt_token_ids, record.output_token_ids)


def settle(world: World, epoch: int, request_ids: list[int], tamper: bool = False) -> str:
    """Build epoch ``epoch``'s report from the real scores, sign it with dev:7 and dev:8, submit; returns its URI.

    With ``tamper`` the two signers collude: the largest share of the first inference is moved to another
    account of that inference before signing (the report stays internally consistent, so only re-deriving the
    shares from the scores catches it)."""
    ao = world.cli
    scores_file = world.home / f"scores-{epoch}.json"
    scores_file.write_text(json.dumps(scores_of(world, request_ids)))
    uri = ao.json("report", "build", "--epoch", str(epoch), "--scores", str(scores_file))["uri"]
    if tamper:
        store = BlobStore(world.home / "blobs")
        report = load_report(store, uri)
        previous = load_report(store, world.honest_uri)
        first = report.inferences[0]
        ranked = sorted(first.shares, key=lambda a: -first.shares[a])
        thief, victim = ranked[-1], ranked[0]
        shares = dict(first.shares)
        shares[thief] += shares[victim] // 2
        shares[victim] -= shares[victim] // 2
        forged = [InferenceShares(first.request_id, first.model_id, shares, first.scores), *report.inferences[1:]]
        tampered = build_report(chain_id=report.chain_id, distributor=report.distributor,
                                config_digest=report.config_digest, epoch=report.epoch, from_block=report.from_block,
                                to_block=report.to_block, inferences=forged, previous=previous)  # fmt: skip
        uri = report_uri(store.put_bytes(tampered.canonical_json()))
    ao("report", "sign", uri, "--from", "dev:7")
    ao("report", "sign", uri, "--from", "dev:8")
    ao("report", "submit", uri, "--from", "dev:6")
    return uri
