"""`report build|sign|submit|verify`: epoch reports signed by m of n oracles."""

from __future__ import annotations

import json
from pathlib import Path

import click

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, from_option, pass_app, password_option, table
from attribution_oracle.cli.params import CHAIN_ID, NON_NEGATIVE
from attribution_oracle.errors import UserError
from attribution_oracle.settlement.chain_data import every_party, submissions, training_data
from attribution_oracle.settlement.citations import citations
from attribution_oracle.settlement.report_service import build_epoch_report, load_report, verify_report
from attribution_oracle.settlement.report_typed_data import Signature, order_for_contract, recover_signer, sign_report
from attribution_oracle.settlement.scores_file import ScoresFile, ScoresFileError, read_scores_file
from attribution_oracle.store.digests import CONTENT_URI_SCHEME


def _signature_dir(app: App, uri: str) -> Path:
    return app.home / "signatures" / uri.removeprefix(CONTENT_URI_SCHEME)


def _read_scores(path: Path | None) -> ScoresFile:
    if path is None:
        return ScoresFile()
    try:
        return read_scores_file(path)
    except ScoresFileError as exc:
        raise UserError(f"{exc} (expected JSON {{request id: {{contribution id: score}}}}, see --help)") from exc


@click.group("report")
def command() -> None:
    """Epoch reports: build from the chain, sign (EIP-712), submit with m signatures, verify."""


@command.command("build")
@click.option("--epoch", type=CHAIN_ID, required=True, help="Report epoch (must exceed the last accepted one).")
@click.option(
    "--scores",
    "scores_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JSON {request id: {contribution id: score}} (the oracle computes these; missing = equal split); "
    'an inference served with --rag: {request id: {"scores": {...}, "retrieved": [contribution id, ...]}}.',
)
@click.option("--to-block", type=NON_NEGATIVE, default=None, help="Last block covered (default: the head).")
@pass_app
def build(app: App, epoch: int, scores_file: Path | None, to_block: int | None) -> None:
    """Build the next report: every inference served since the last report, split into exact shares."""
    given = _read_scores(scores_file)
    built = build_epoch_report(
        app.client,
        app.deployment,
        app.store,
        epoch=epoch,
        scores=given.scores,
        retrieved=given.retrieved,
        to_block=to_block,
    )
    r = built.report
    data = {
        "uri": built.uri,
        "epoch": r.epoch,
        "inferences": len(r.inferences),
        "totalCumulative": str(r.total_cumulative),
        "rewardsRoot": "0x" + r.rewards_root.hex(),
        "attributionRoot": "0x" + r.attribution_root.hex(),
    }
    rows = [[app.name_of(a), format_eth(v)] for a, v in r.rewards.items()]
    app.emit(
        data,
        table(
            f"report {built.uri} (epoch {epoch}, {len(r.inferences)} inferences)", ["account", "cumulative OPEN"], rows
        ),
    )


@command.command("sign")
@click.argument("uri")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also write the signature here."
)
@from_option
@password_option
@pass_app
def sign(app: App, uri: str, out: Path | None, sender: str, password_file) -> None:
    """Sign a stored report as an oracle (the signature lands in <home>/signatures/)."""
    report = load_report(app.store, uri)
    signer = app.signer(sender, password_file)
    distributor = app.deployment.contracts["RewardDistributor"].address
    signature = sign_report(report.message(uri), app.client.chain_id, distributor, signer)
    body = json.dumps({"signer": signature.signer, "v": signature.v, "r": signature.r.hex(), "s": signature.s.hex()})
    directory = _signature_dir(app, uri)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{signature.signer}.json").write_text(body)
    if out is not None:
        out.write_text(body)
    app.result(json.loads(body), f"signed {uri} as {signature.signer}")


def _load_signatures(app: App, uri: str, files: tuple[Path, ...]) -> list[Signature]:
    paths = list(files) or sorted(_signature_dir(app, uri).glob("*.json"))
    found = []
    for path in paths:
        try:
            raw = json.loads(Path(path).read_text())
            found.append(Signature(raw["signer"], int(raw["v"]), bytes.fromhex(raw["r"]), bytes.fromhex(raw["s"])))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{path} is not a signature file ({exc})") from exc
    return found


@command.command("submit")
@click.argument("uri")
@click.option("--signature", "files", multiple=True, type=click.Path(path_type=Path), help="Signature files.")
@from_option
@password_option
@pass_app
def submit(app: App, uri: str, files: tuple[Path, ...], sender: str, password_file) -> None:
    """Submit a report with exactly m valid signatures from the current oracle set."""
    report = load_report(app.store, uri)
    distributor = app.contract("RewardDistributor")
    chain_id = app.client.chain_id
    message = report.message(uri)
    oracle_set = {s.lower() for s in app.client.call(distributor.functions.getSigners())}
    threshold = app.client.call(distributor.functions.threshold())
    valid = [
        s
        for s in _load_signatures(app, uri, files)
        if recover_signer(message, chain_id, distributor.address, s).lower() == s.signer.lower()
        and s.signer.lower() in oracle_set
    ]
    chosen = order_for_contract(valid)[:threshold]
    if len(chosen) < threshold:
        raise UserError(f"{len(chosen)} valid signature(s) from the oracle set; the distributor needs {threshold}")
    signer = app.signer(sender, password_file)
    fn = distributor.functions.submitReport(
        report.epoch,
        report.rewards_root,
        report.total_cumulative,
        report.attribution_root,
        uri,
        [s.as_tuple() for s in order_for_contract(chosen)],
    )
    receipt = app.client.send(fn, signer, f"submit report for epoch {report.epoch}")
    app.result(
        {"epoch": report.epoch, "tx": receipt["transactionHash"].to_0x_hex(), "gasUsed": receipt["gasUsed"]},
        f"submitted epoch {report.epoch} with {len(chosen)} signatures (gas {receipt['gasUsed']:,})",
    )


@command.command("verify")
@click.argument("uri")
@pass_app
def verify(app: App, uri: str) -> None:
    """Re-derive a report from the chain and the stored inputs, and print every check."""
    checks = verify_report(app.client, app.deployment, app.store, uri)
    ok = all(c[1] for c in checks)
    app.emit(
        {"ok": ok, "checks": [{"check": c, "ok": good, "detail": d} for c, good, d in checks]},
        table(f"verify {uri}", ["check", "ok", "detail"], [[c, "yes" if good else "NO", d] for c, good, d in checks]),
    )
    if not ok:
        raise UserError(f"report {uri} does not verify")


def _accepted_uris(app: App, uri: str | None) -> list[str]:
    if uri is not None:
        return [uri]
    uris = [s.report_uri for s in submissions(app.client, app.deployment)]
    if not uris:
        raise UserError("no report has been accepted on-chain yet")
    return uris


@command.command("show")
@click.argument("uri", required=False)
@click.option("--top", type=click.IntRange(1, 100), default=3, show_default=True, help="Contributions per inference.")
@pass_app
def show(app: App, uri: str | None, top: int) -> None:
    """Per inference, its top contributions and who got what; then each account's earnings.

    Inferences served with retrieval (serve --rag) also list their citations: each retrieved contribution, its
    contributor and its share of the inference's contributor pool.

    Without URI: every report accepted on-chain, oldest first (reports are read from the local content store).
    """
    names = app.names()
    label = {}  # contribution id -> (contributor, datanet)
    inference_rows, earned, data, citation_rows = [], {}, [], []
    uris = _accepted_uris(app, uri)
    for report_uri in uris:
        report = load_report(app.store, report_uri)
        for inference in report.inferences:
            if inference.model_id not in label:
                contributions, _ = training_data(app.client, app.deployment, inference.model_id)
                label[inference.model_id] = {c.id: (c.contributor, c.datanet_id) for c in contributions}
            known = label[inference.model_id]
            ranked = sorted(inference.scores.items(), key=lambda kv: (-kv[1], int(kv[0]) if kv[0].isdigit() else 0))
            best = [(cid, score) for cid, score in ranked if score > 0][:top]
            for account, amount in inference.shares.items():
                earned[account] = earned.get(account, 0) + amount
            top_text = ", ".join(
                f"#{cid} {names.get(known.get(cid, ('?',))[0], known.get(cid, ('?',))[0][:10])} ({score:.3g})"
                for cid, score in best
            )
            cited = citations(inference, {cid: who for cid, (who, _) in known.items()})
            for c in cited:
                who = c.contributor or "?"
                citation_rows.append([inference.request_id, c.rank, f"#{c.contribution_id}",
                                      names.get(who, who), f"{100 * c.share:.1f}%"])  # fmt: skip
            paid = sum(inference.shares.values())
            inference_rows.append(
                [report.epoch, inference.request_id, inference.model_id, top_text or "(equal split)", format_eth(paid)]
            )
            data.append(
                {
                    "epoch": report.epoch,
                    "requestId": inference.request_id,
                    "modelId": inference.model_id,
                    "top": [{"contribution": cid, "score": score} for cid, score in best],
                    "shares": {a: str(v) for a, v in inference.shares.items()},
                    "citations": [
                        {
                            "rank": c.rank,
                            "contribution": c.contribution_id,
                            "contributor": c.contributor,
                            "share": c.share,
                        }
                        for c in cited
                    ],
                }
            )
    parties = every_party(app.client, app.deployment, [d["requestId"] for d in data], earned)
    paid_total = sum(p.amount for p in parties)
    earned_rows = [[names.get(p.account, p.account), p.role, format_eth(p.amount)] for p in parties]
    earned_rows.append(["total", f"= fees of {len(data)} inference(s)", format_eth(paid_total)])
    if app.json_output:
        app.emit(
            {
                "uris": uris,
                "inferences": data,
                "earned": {a: str(v) for a, v in sorted(earned.items())},
                "parties": [{"account": p.account, "role": p.role, "amount": str(p.amount)} for p in parties],
                "paid": str(paid_total),
            }
        )
        return
    app.emit(
        None,
        table("top contributions per inference", ["epoch", "request", "model", "top", "to data OPEN"], inference_rows),
    )
    if citation_rows:
        app.emit(
            None,
            table("citations (retrieved with serve --rag)", ["request", "rank", "contribution", "contributor",
                                                             "share of contributor pool"], citation_rows),
        )  # fmt: skip
    app.emit(None, table("who earned what from these inferences", ["account", "role", "OPEN"], earned_rows))
