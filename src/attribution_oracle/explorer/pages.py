"""What each page shows: plain dicts built from the explorer's state (the templates only lay them out)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from attribution_oracle.explorer import leaderboards as boards
from attribution_oracle.explorer.audit_verdicts import Audits
from attribution_oracle.explorer.explorer_state import Explorer
from attribution_oracle.explorer.ledger import Inference
from attribution_oracle.explorer.paging import paginate
from attribution_oracle.explorer.signals import Signals
from attribution_oracle.store.store_errors import StoreError

SNIPPET = 240
BLOB_LIMIT = 200_000
_helpers: dict[int, tuple[Signals, Audits]] = {}
_caches: dict[tuple[int, str], tuple[Any, Any]] = {}
_lock = threading.Lock()


def _tools(explorer: Explorer) -> tuple[Signals, Audits]:
    with _lock:
        if id(explorer) not in _helpers:
            cache = Path(explorer.cache_dir) if explorer.cache_dir else Path.home() / ".cache" / "attribution-explorer"
            _helpers[id(explorer)] = (Signals(explorer.store, cache), Audits(explorer.store))
        return _helpers[id(explorer)]


def warm_up(explorer: Explorer) -> threading.Thread:
    """Restore every known model's span index in the background, so first inference views are fast."""

    def load() -> None:
        signals, _ = _tools(explorer)
        for record in list(explorer.view.models.values()):
            signals.artefacts(record.metadata_uri)

    thread = threading.Thread(target=load, name="explorer-warm-up", daemon=True)
    thread.start()
    return thread


def _cached(explorer: Explorer, name: str, version: Any, build):
    key = (id(explorer), name)
    with _lock:
        hit = _caches.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = build()
    with _lock:
        _caches[key] = (version, value)
    return value


def _version(explorer: Explorer) -> tuple[int, int]:
    return (explorer.ledger.version, id(explorer.view))


def snippet(explorer: Explorer, content_hash: str, limit: int = SNIPPET) -> str | None:
    """The start of a contribution's text from the content store (None if the store does not hold it)."""
    if explorer.store is None:
        return None
    try:
        path = explorer.store.path_of(content_hash)
        with open(path, "rb") as f:
            data = f.read(limit * 4)
    except (StoreError, OSError):
        return None
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


# ----------------------------------------------------------------------- home


def home(explorer: Explorer) -> dict:
    """Totals over everything the explorer knows."""
    ledger, view = explorer.ledger, explorer.view
    latest = ledger.latest_epoch()
    inferences = list(ledger.inferences.values())
    settled = [i for i in inferences if i.epoch is not None]
    paid = sum(i.fee for i in inferences if i.status != "refunded")
    cumulative = latest.total_cumulative if latest else 0
    claimed = sum(ledger.claimed.values())
    recent = sorted(inferences, key=lambda i: -i.request_id)[:10]
    return {
        "totals": {
            "datanets": len(view.datanets),
            "contributions": len(view.contributions),
            "models": len(view.models),
            "inferences": len(inferences),
            "settled": len(settled),
            "epochs": len([e for e in ledger.epochs.values() if not e.vetoed]),
        },
        "paid": paid,
        "cumulative": cumulative,
        "claimed": claimed,
        "claimable": max(0, cumulative - claimed),
        "recent": recent,
        "last_inference": max(ledger.inferences, default=0),
        "last_epoch": max(ledger.epochs, default=0),
    }


# ------------------------------------------------------------------ datanets


def datanets(explorer: Explorer, params: dict) -> dict:
    """Every Datanet."""
    rows = list(explorer.view.datanets.values())
    keys = {
        "id": lambda d: d.id,
        "name": lambda d: d.name.lower(),
        "contributions": lambda d: d.contribution_count,
        "approved": lambda d: d.approved_count,
        "versions": lambda d: d.version_count,
    }
    return {"page": paginate(rows, keys, params, default="id", default_order="asc")}


def datanet(explorer: Explorer, datanet_id: int, params: dict) -> dict | None:
    """One Datanet: contributions, versions, audit verdicts."""
    view = explorer.view
    found = view.datanets.get(datanet_id)
    if found is None:
        return None
    contributions = [c for c in view.contributions.values() if c.datanet_id == datanet_id]
    keys = {
        "id": lambda c: c.id,
        "status": lambda c: c.status,
        "stake": lambda c: c.stake,
        "contributor": lambda c: c.contributor.lower(),
        "size": lambda c: c.size,
        "influence": lambda c: explorer.ledger.influence.get(str(c.id), 0.0),
    }
    _, audits = _tools(explorer)
    verdicts = audits.verdicts(datanet_id, contributions)
    return {
        "datanet": found,
        "page": paginate(contributions, keys, params, default="id", default_order="asc"),
        "versions": view.versions.get(datanet_id, []),
        "verdicts": sorted(verdicts, key=lambda v: (-v.coverage, v.contribution_id)),
        "influence": explorer.ledger.influence,
    }


def contribution(explorer: Explorer, contribution_id: int, params: dict) -> dict | None:
    """One contribution, its text and the inferences it influenced."""
    found = explorer.view.contributions.get(contribution_id)
    if found is None:
        return None
    ledger = explorer.ledger
    used = [ledger.inferences[r] for r in ledger.used_by.get(str(contribution_id), ()) if r in ledger.inferences]
    keys = {
        "request": lambda i: i.request_id,
        "score": lambda i: i.positive_scores().get(str(contribution_id), 0.0),
        "epoch": lambda i: i.epoch or 0,
    }
    return {
        "c": found,
        "text": snippet(explorer, found.content_hash, 20_000),
        "page": paginate(used, keys, params, default="request"),
        "cid": str(contribution_id),
        "influence": ledger.influence.get(str(contribution_id), 0.0),
    }


def blob(explorer: Explorer, digest: str) -> dict | None:
    """A blob of the content store as text (manifests, reports, contributions)."""
    if explorer.store is None or not explorer.store.has(digest):
        return None
    return {"digest": digest, "text": snippet(explorer, digest, BLOB_LIMIT)}


# -------------------------------------------------------------------- models


def models(explorer: Explorer, params: dict) -> dict:
    """Every model with its paid inferences."""
    counts: dict[int, int] = {}
    for i in explorer.ledger.inferences.values():
        counts[i.model_id] = counts.get(i.model_id, 0) + 1
    rows = list(explorer.view.models.values())
    keys = {"id": lambda m: m.id, "price": lambda m: m.price, "inferences": lambda m: counts.get(m.id, 0)}
    return {"page": paginate(rows, keys, params, default="id", default_order="asc"), "counts": counts}


def model(explorer: Explorer, model_id: int, params: dict) -> dict | None:
    """A model's provenance manifest as a card, with its loss curve."""
    found = explorer.view.models.get(model_id)
    if found is None:
        return None
    signals, _ = _tools(explorer)
    manifest = signals.manifest(found.metadata_uri)
    losses = []
    if manifest:
        losses = [float(x) for x in manifest.get("metrics", {}).get("train_losses", [])]
    rows = [i for i in explorer.ledger.inferences.values() if i.model_id == model_id]
    keys = {"request": lambda i: i.request_id, "fee": lambda i: i.fee, "status": lambda i: i.status}
    return {
        "m": found,
        "manifest": manifest,
        "losses": losses,
        "page": paginate(rows, keys, params, default="request"),
    }


# ---------------------------------------------------------------- inferences


def inferences(explorer: Explorer, params: dict) -> dict:
    """Every paid inference."""
    rows = list(explorer.ledger.inferences.values())
    keys = {
        "request": lambda i: i.request_id,
        "model": lambda i: i.model_id,
        "fee": lambda i: i.fee,
        "status": lambda i: i.status,
        "epoch": lambda i: i.epoch or 0,
    }
    return {
        "page": paginate(rows, keys, params, default="request"),
        "last_inference": max(explorer.ledger.inferences, default=0),
    }


def inference(explorer: Explorer, request_id: int) -> dict | None:
    """One inference: prompt, output with its spans, top contributions, pool split, citations."""
    found: Inference | None = explorer.ledger.inferences.get(request_id)
    if found is None:
        return None
    view = explorer.view
    model_record = view.models.get(found.model_id)
    signals, _ = _tools(explorer)
    evidence = signals.evidence(found, model_record.metadata_uri) if model_record and found.output else None
    normalised = found.positive_scores()
    span_docs = {d for s in (evidence.spans if evidence else []) for d in s.documents}
    ids = sorted(set(normalised) | span_docs, key=lambda c: (-normalised.get(c, 0.0), int(c) if c.isdigit() else 0))
    panel = []
    for cid in ids:
        record = view.contributions.get(int(cid)) if cid.isdigit() else None
        panel.append(
            {
                "id": cid,
                "combined": found.scores.get(cid),
                "share": normalised.get(cid, 0.0),
                "contributor": record.contributor if record else None,
                "datanet": record.datanet_id if record else None,
                "text": snippet(explorer, record.content_hash) if record else None,
                "spans": [s.index for s in (evidence.spans if evidence else []) if cid in s.documents],
            }
        )
    shares = sorted(found.shares.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "i": found,
        "model": model_record,
        "evidence": evidence,
        "panel": panel,
        "shares": shares,
        "shares_total": sum(found.shares.values()),
        "citations": [
            {"id": c, "record": view.contributions.get(int(c)) if c.isdigit() else None} for c in found.citations
        ],
    }


def inference_signals(explorer: Explorer, request_id: int) -> dict | None:
    """Gradient and span scores of an inference from the model's scorer (JSON for the contribution panel)."""
    found = explorer.ledger.inferences.get(request_id)
    if found is None:
        return None
    record = explorer.view.models.get(found.model_id)
    signals, _ = _tools(explorer)
    if record is None or not found.output_token_ids:
        return {"available": False, "reason": "no served record or model for this inference"}
    try:
        scores = signals.scores(found, record.metadata_uri)
    except Exception as exc:  # noqa: BLE001 - the page shows why the signals are missing
        return {"available": False, "reason": f"the model's scorer cannot be loaded: {exc}"}
    return {"available": bool(scores), **scores}


# -------------------------------------------------------------- contributors


def _contributor_of(explorer: Explorer) -> dict[str, str]:
    return _cached(
        explorer,
        "contributor_of",
        id(explorer.view),
        lambda: {str(c.id): c.contributor for c in explorer.view.contributions.values()},
    )


def _datanet_of(explorer: Explorer) -> dict[str, int]:
    return _cached(
        explorer,
        "datanet_of",
        id(explorer.view),
        lambda: {str(c.id): c.datanet_id for c in explorer.view.contributions.values()},
    )


def _contributor_board(explorer: Explorer) -> list:
    return _cached(
        explorer,
        "contributors",
        _version(explorer),
        lambda: boards.contributor_board(explorer.ledger, _contributor_of(explorer)),
    )


def contributors(explorer: Explorer, params: dict) -> dict:
    """Every account that contributed or earned."""
    entries = {e.key: e for e in _contributor_board(explorer)}
    for ids in explorer.view.by_contributor.values():
        key = explorer.view.contributions[ids[0]].contributor
        if key not in entries:
            entries[key] = boards.Entry(key, 0, 0.0, 0)
    counts = {
        explorer.view.contributions[ids[0]].contributor: len(ids) for ids in explorer.view.by_contributor.values()
    }
    keys = {
        "address": lambda e: e.key.lower(),
        "earnings": lambda e: e.earnings,
        "influence": lambda e: e.influence,
        "contributions": lambda e: counts.get(e.key, 0),
    }
    return {"page": paginate(list(entries.values()), keys, params, default="earnings"), "counts": counts}


def contributor(explorer: Explorer, address: str, params: dict) -> dict:
    """One address: contributions, inferences that used them, earnings per epoch, claimed and claimable."""
    view, ledger = explorer.view, explorer.ledger
    own = [view.contributions[c] for c in view.by_contributor.get(address.lower(), [])]
    used_ids = sorted({r for c in own for r in ledger.used_by.get(str(c.id), ())})
    used = [ledger.inferences[r] for r in used_ids if r in ledger.inferences]
    own_ids = {str(c.id) for c in own}
    ckeys = {
        "id": lambda c: c.id,
        "status": lambda c: c.status,
        "stake": lambda c: c.stake,
        "influence": lambda c: ledger.influence.get(str(c.id), 0.0),
    }
    ikeys = {
        "request": lambda i: i.request_id,
        "earned": lambda i: i.shares.get(address, 0),
        "influence": lambda i: sum(w for c, w in i.positive_scores().items() if c in own_ids),
    }
    per_epoch = ledger.earnings.get(address, {})
    epochs = sorted(e for e in ledger.epochs if not ledger.epochs[e].vetoed)
    status = explorer.claim_status(address)
    claim_data = None
    if status.get("claimable", 0) > 0 and explorer.client is not None and explorer.deployment is not None:
        claim_data = _claim_call(explorer, address, status["cumulative"])
    return {
        "address": address,
        "contributions": paginate(own, ckeys, params, default="id", prefix="c_", default_order="asc"),
        "used": paginate(used, ikeys, params, default="request", prefix="i_"),
        "own_ids": own_ids,
        "influence": ledger.influence,
        "chart": {"labels": [str(e) for e in epochs], "values": [per_epoch.get(e, 0) / 1e18 for e in epochs]},
        "earned_total": sum(per_epoch.values()),
        "status": status,
        "claim": claim_data,
    }


def _claim_call(explorer: Explorer, address: str, cumulative: int) -> dict | None:
    """The distributor address and ``claim(account, cumulative, proof)`` calldata for a browser wallet."""
    with explorer.lock:
        latest = explorer.ledger.latest_epoch()
    if latest is None or latest.report is None or address not in latest.report.rewards:
        return None
    amount, proof = latest.report.rewards_tree.proof(address)
    distributor = explorer.client.contract(explorer.deployment, "RewardDistributor")
    data = distributor.encode_abi("claim", args=[address, amount, proof])
    return {"to": distributor.address, "data": data, "chainId": explorer.client.chain_id}


# -------------------------------------------------------------------- epochs


def epochs(explorer: Explorer, params: dict) -> dict:
    """Every accepted report."""
    rows = list(explorer.ledger.epochs.values())
    keys = {
        "epoch": lambda e: e.epoch,
        "inferences": lambda e: e.inference_count,
        "total": lambda e: e.total_cumulative,
        "block": lambda e: e.block_number,
    }
    return {"page": paginate(rows, keys, params, default="epoch"), "last_epoch": max(explorer.ledger.epochs, default=0)}


_verified: dict[tuple[int, str], Any] = {}


def verification(explorer: Explorer, uri: str):
    """``settlement.report_service.rederive_report`` (what ``report verify`` runs), cached per report URI."""
    from attribution_oracle.settlement.report_service import rederive_report

    key = (id(explorer), uri)
    if key not in _verified:
        _verified[key] = rederive_report(explorer.client, explorer.deployment, explorer.store, uri)
    return _verified[key]


def epoch(explorer: Explorer, number: int, params: dict) -> dict | None:
    """One report: signers, roots, URI, and its re-derivation with the differing leaves."""
    found = explorer.ledger.epochs.get(number)
    if found is None:
        return None
    result: dict[str, Any] = {"e": found, "signers": explorer.report_signers(number), "verify": None, "error": ""}
    if explorer.client is None or explorer.store is None:
        result["error"] = "verification needs the chain and the content store"
    else:
        try:
            result["verify"] = verification(explorer, found.uri)
        except Exception as exc:  # noqa: BLE001 - an unreadable report does not verify; say why
            result["error"] = str(exc)
    rows = found.report.inferences if found.report else []
    keys = {"request": lambda i: i.request_id, "model": lambda i: i.model_id, "paid": lambda i: sum(i.shares.values())}
    result["page"] = paginate(rows, keys, params, default="request", default_order="asc")
    return result


# --------------------------------------------------------------- leaderboards


def leaderboards(explorer: Explorer, params: dict) -> dict:
    """Contributors, Datanets and models by earnings and by influence."""
    contributors_ = _contributor_board(explorer)
    datanets_ = _cached(
        explorer, "datanets", _version(explorer), lambda: boards.datanet_board(explorer.ledger, _datanet_of(explorer))
    )
    models_ = _cached(explorer, "models", explorer.ledger.version, lambda: boards.model_board(explorer.ledger))
    keys = {"earnings": lambda e: e.earnings, "influence": lambda e: e.influence, "count": lambda e: e.count}
    names = {str(d.id): d.name for d in explorer.view.datanets.values()}
    return {
        "contributors": paginate(contributors_, keys, params, default="earnings", prefix="c_", per_page=10),
        "datanets": paginate(datanets_, keys, params, default="earnings", prefix="d_", per_page=10),
        "models": paginate(models_, keys, params, default="earnings", prefix="m_", per_page=10),
        "names": names,
    }


# ---------------------------------------------------------------------- live


def live(explorer: Explorer, after_inference: int, after_epoch: int) -> dict:
    """New inferences and epochs since the given ids (the pages poll this)."""
    with explorer.lock:
        ledger = explorer.ledger
        new = sorted((i for r, i in ledger.inferences.items() if r > after_inference), key=lambda i: i.request_id)[-50:]
        epochs_ = sorted((e for n, e in ledger.epochs.items() if n > after_epoch), key=lambda e: e.epoch)[-50:]
        return {
            "head": ledger.head_block,
            "inferences": [
                {"id": i.request_id, "model": i.model_id, "payer": i.payer, "fee": str(i.fee), "status": i.status}
                for i in new
            ],
            "epochs": [
                {"epoch": e.epoch, "uri": e.uri, "inferences": e.inference_count, "total": str(e.total_cumulative)}
                for e in epochs_
            ],
            "counts": {"inferences": len(ledger.inferences), "epochs": len(ledger.epochs)},
        }
