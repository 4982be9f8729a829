"""`model train|eval|register|list|show|earnings|withdraw`: LoRA adapters trained on verified Datanets."""

from __future__ import annotations

import math
import re
from pathlib import Path

import click

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, as_dict, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.cli.params import CHAIN_ID, NON_NEGATIVE, POSITIVE, BoundedIntType, FiniteFloatType
from attribution_oracle.cli.progress import StepProgress
from attribution_oracle.errors import UserError
from attribution_oracle.factory.registry import parse_split, register_model, resolve_sources

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")

json_flag = click.option(
    "--json", "json_here", is_flag=True, help="Machine-readable JSON output (same as the global --json)."
)


def _json(app: App, json_here: bool) -> None:
    if json_here:
        app.json_output = True


def _hash_arg(app: App, path: Path | None, digest: str | None, what: str) -> str:
    if (path is None) == (digest is None):
        raise UserError(f"give exactly one of --{what} FILE or --{what}-hash HEX")
    if path is not None:
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        return app.store.put_file(path)
    if not _HEX64.match(digest):
        raise UserError(f"--{what}-hash must be 64 hex characters (a sha256)")
    return digest.lower().removeprefix("0x")


@click.group("model")
def command() -> None:
    """Models: LoRA adapters trained on Datanets and registered with the data they were trained on."""


@command.command("register")
@click.option("--adapter", type=click.Path(path_type=Path), default=None, help="Adapter file (stored and hashed).")
@click.option("--adapter-hash", default=None, help="sha256 of an adapter already stored.")
@click.option("--base", type=click.Path(path_type=Path), default=None, help="Base model file (hashed).")
@click.option("--base-hash", default=None, help="sha256 of the base model.")
@click.option("--datanet", "datanets", multiple=True, required=True, help="ID or ID@VERSION (default latest).")
@click.option("--price", required=True, help="OPEN per inference.")
@click.option("--split", "split_text", default="5000/4000/1000", show_default=True, help="Owner/contributors/datanets.")
@click.option("--metadata-uri", default="", help="Where the model's manifest lives.")
@from_option
@password_option
@pass_app
def register(
    app: App,
    adapter: Path | None,
    adapter_hash: str | None,
    base: Path | None,
    base_hash: str | None,
    datanets: tuple[str, ...],
    price: str,
    split_text: str,
    metadata_uri: str,
    sender: str,
    password_file: Path | None,
) -> None:
    """Register a model trained on published Datanet versions."""
    split = parse_split(split_text)
    price_wei = parse_amount(price, "price")
    adapter_digest = _hash_arg(app, adapter, adapter_hash, "adapter")
    base_digest = _hash_arg(app, base, base_hash, "base")
    sources = resolve_sources(app.client, app.deployment, datanets)
    signer = app.signer(sender, password_file)
    model_id = register_model(
        app.client,
        app.deployment,
        signer,
        base_hash=base_digest,
        adapter_hash=adapter_digest,
        sources=sources,
        price_wei=price_wei,
        split=split,
        metadata_uri=metadata_uri,
    )
    app.sync()
    trained_on = ", ".join(f"{d}@{v}" for d, v in sources)
    app.result(
        {"modelId": model_id, "adapterHash": adapter_digest},
        f"registered model {model_id}: adapter {adapter_digest[:16]}, trained on datanet {trained_on}, "
        f"{format_eth(price_wei)} OPEN per inference",
    )


@command.command("train")
@click.option(
    "--datanet", "datanets", multiple=True, required=True, help="ID or ID@VERSION (default latest); repeatable."
)
@click.option(
    "--base", "base_spec", default="smollm2", show_default=True, help="smollm2, tiny[:SEED] or a local HF dir."
)
@click.option("--steps", type=POSITIVE, default=30, show_default=True, help="Optimiser steps.")
@click.option(
    "--seed",
    type=NON_NEGATIVE,
    default=0,
    show_default=True,
    help="Seed of the LoRA init, data order, split, projection.",
)
@click.option(
    "--lr",
    type=FiniteFloatType(0, 10, low_open=True),
    default=5e-4,
    show_default=True,
    help="Peak learning rate (AdamW).",
)
@click.option(
    "--rank", type=BoundedIntType(1, 4096), default=8, show_default=True, help="LoRA rank (alpha = 2 * rank)."
)
@click.option(
    "--batch-size", type=BoundedIntType(1, 65_536), default=8, show_default=True, help="Packed rows per step."
)
@click.option(
    "--seq-len",
    type=BoundedIntType(2, 1 << 20),
    default=256,
    show_default=True,
    help="Tokens per chunk and per packed row.",
)
@click.option(
    "--eval-fraction",
    type=FiniteFloatType(0, 1, high_open=True),
    default=0.1,
    show_default=True,
    help="Chunks held out for evaluation.",
)
@click.option(
    "--checkpoint-every", type=POSITIVE, default=10, show_default=True, help="Save the resumable state every K steps."
)
@click.option(
    "--attribution-checkpoints",
    type=POSITIVE,
    default=1,
    show_default=True,
    help="Adapter snapshots the index ensembles.",
)
@click.option(
    "--proj-dim", type=BoundedIntType(1, 1 << 20), default=512, show_default=True, help="Gradient projection dimension."
)
@click.option(
    "--index-capture",
    type=click.Choice(["backward", "pass", "per-example"]),
    default="backward",
    show_default=True,
    help="Where the index's per-chunk gradients come from: the training backward, or a pass after training.",
)
@click.option(
    "--attribution-layers",
    type=BoundedIntType(0, 1 << 10),
    default=0,
    show_default=True,
    help="Gradient index over the LoRA modules of the last K layers only (faster scoring); 0: every layer.",
)
@click.option(
    "--nproc",
    type=BoundedIntType(1, 1024),
    default=1,
    show_default=True,
    help="Processes for the index build's gradient pass (torch.distributed: gloo on CPU, NCCL on GPUs); same bytes.",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the resumable state lives (default HOME/runs/<name from data, base and settings>).",
)
@click.option("--register", "do_register", is_flag=True, help="Register the trained model in ModelRegistry.")
@click.option("--price", default=None, help="OPEN per inference (with --register).")
@click.option("--split", "split_text", default="5000/4000/1000", show_default=True, help="Owner/contributors/datanets.")
@click.option("--from", "sender", default=None, metavar="WALLET", help="Signing account (with --register).")
@password_option
@json_flag
@pass_app
def train(
    app: App,
    datanets: tuple[str, ...],
    base_spec: str,
    steps: int,
    seed: int,
    lr: float,
    rank: int,
    batch_size: int,
    seq_len: int,
    eval_fraction: float,
    checkpoint_every: int,
    attribution_checkpoints: int,
    proj_dim: int,
    index_capture: str,
    attribution_layers: int,
    nproc: int,
    run_dir: Path | None,
    do_register: bool,
    price: str | None,
    split_text: str,
    sender: str | None,
    password_file: Path | None,
    json_here: bool,
) -> None:
    """Fine-tune a LoRA adapter on verified Datanet versions, build its attribution index, store its manifest.

    Every contribution blob is checked against the version's on-chain Merkle root first. Rerun the same
    command after a crash: it resumes from the last checkpoint and gives the same adapter.
    """
    from attribution_oracle.factory import ChainSource, TrainConfig, manifest_uri, train_model

    _json(app, json_here)
    config = TrainConfig(
        steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, rank=rank, seed=seed, eval_fraction=eval_fraction,
        checkpoint_every=checkpoint_every, attribution_checkpoints=attribution_checkpoints, proj_dim=proj_dim,
        index_capture=index_capture, attribution_layers=attribution_layers,
    )  # fmt: skip
    signer = None
    price_wei = None if price is None else parse_amount(price, "price")
    split = parse_split(split_text)
    if not do_register and (price is not None or sender is not None):
        raise UserError("--price and --from only apply with --register")
    if do_register:
        if price is None or sender is None:
            raise UserError("--register needs --price and --from")
        signer = app.signer(sender, password_file)
    source = ChainSource(app.client, app.deployment)
    with _TrainProgress(app, steps) as shown:
        result = train_model(
            source, app.store, datanets, base_spec=base_spec, config=config, run_dir=run_dir,
            runs_root=app.home / "runs", progress=shown.step, phase=shown.phase, nproc=nproc,
        )  # fmt: skip
    data = {
        "manifest": result.manifest_digest,
        "metadataURI": manifest_uri(result.manifest_digest),
        "adapterHash": result.adapter_digest,
        "baseModelHash": result.base_sha256,
        "datanets": [f"{d}@{v}" for d, v in result.sources],
        "eval": result.manifest["metrics"]["eval"],
        "evalBase": result.manifest["metrics"]["eval_base"],
        "trainTokens": result.train_tokens,
        "trainSeconds": result.train_seconds,
        "indexSeconds": result.index_seconds,
        "resumedFromStep": result.resumed_from,
        "modelId": None,
    }
    if do_register:
        data["modelId"] = register_model(
            app.client, app.deployment, signer, base_hash=result.base_sha256, adapter_hash=result.adapter_digest,
            sources=result.sources, price_wei=price_wei, split=split, metadata_uri=manifest_uri(result.manifest_digest),
        )  # fmt: skip
        app.sync()
    ev = data["eval"]
    rows = [
        ["manifest", data["metadataURI"]],
        ["adapter sha256", result.adapter_digest],
        ["trained on", ", ".join(data["datanets"])],
        ["contributions", sum(1 for c in result.manifest["contributions"] if c["train_chunks"])],
        ["held-out loss / perplexity", "-" if ev["loss"] is None else f"{ev['loss']:.4f} / {ev['perplexity']:.2f}"],
        ["held-out loss: base model -> tuned", _held_out_change(data["evalBase"], ev)],
        ["training loss: base model -> tuned", _loss_change(result.manifest["metrics"])],
        ["resumed from step", result.resumed_from],
        ["tokens/s", f"{result.train_tokens / result.train_seconds:.0f}" if result.train_seconds else "-"],
        ["attribution index", f"{result.index_seconds:.1f} s"],
    ]
    if data["modelId"] is not None:
        rows.append(["registered model", data["modelId"]])
    app.emit(data, table("trained model", ["field", "value"], rows))


class _TrainProgress(StepProgress):
    """Training progress that appears only once the data has verified (so a refusal stays one line)."""

    def __init__(self, app: App, steps: int) -> None:
        super().__init__(app.console, enabled=not app.json_output, fields=("loss",))
        self.steps = steps

    def phase(self, text: str) -> None:
        """Show what is being done (the verification step stays silent unless it fails)."""
        if not text.startswith("verifying"):
            self.note(text)

    def step(self, step: int, total: int, loss: float) -> None:
        """Advance the count (a bar on a terminal, a line per tenth of the steps in a log)."""
        if not self.started:
            self.start("training", total)
        self.update(completed=step, loss="-" if math.isnan(loss) else f"{loss:.4f}")


def _held_out_change(base: dict | None, tuned: dict) -> str:
    """The base model's held-out loss beside the tuned model's (on the same held-out chunks)."""
    if base is None or base.get("loss") is None or tuned.get("loss") is None:
        return "-"
    return f"{base['loss']:.4f} -> {tuned['loss']:.4f} ({tuned['loss'] - base['loss']:+.4f})"


def _loss_change(metrics: dict) -> str:
    """The first step's training loss (the base model's: LoRA starts as a zero delta) beside the last step's."""
    first, last = metrics.get("train_loss_first"), metrics.get("train_loss_last")
    if first is None or last is None or math.isnan(first) or math.isnan(last):
        return "-"
    return f"{first:.4f} -> {last:.4f} ({last - first:+.4f})"


def _manifest_digest(app: App, model_id: int | None, manifest: str | None) -> str:
    from attribution_oracle.factory import manifest_digest_of_uri

    if (model_id is None) == (manifest is None):
        raise UserError("give a model ID or --manifest DIGEST")
    if manifest is not None:
        if not _HEX64.match(manifest):
            raise UserError("--manifest must be 64 hex characters (a sha256)")
        return manifest.lower().removeprefix("0x")
    app.sync()
    return manifest_digest_of_uri(app.catalog.get_model(model_id).metadata_uri)


@command.command("eval")
@click.argument("model_id", type=CHAIN_ID, required=False)
@click.option("--manifest", default=None, help="A manifest digest instead of a registered model.")
@json_flag
@pass_app
def eval_(app: App, model_id: int | None, manifest: str | None, json_here: bool) -> None:
    """Recompute a model's held-out loss and perplexity and compare with its manifest."""
    from attribution_oracle.factory.evaluation import evaluate_manifest

    _json(app, json_here)
    digest = _manifest_digest(app, model_id, manifest)
    report = evaluate_manifest(app.store, digest)
    rec, new = report["recorded"], report["recomputed"]

    def fmt(v):
        return "-" if v is None else f"{v:.6f}"

    rows = [
        ["loss", fmt(rec["loss"]), fmt(new["loss"])],
        ["perplexity", fmt(rec["perplexity"]), fmt(new["perplexity"])],
        ["tokens", rec["tokens"], new["tokens"]],
        [
            "base model loss (adapter off)",
            fmt((report["recorded_base"] or {}).get("loss")),
            fmt(report["base"]["loss"]),
        ],
    ]
    app.emit(
        {"manifest": digest, **report},
        table(f"held-out evaluation of {digest[:16]}", ["metric", "manifest", "recomputed"], rows),
    )
    if not report["match"]:
        raise UserError("the recomputed held-out loss does not match the manifest")


def _model_row(m: dict, names: dict[str, str]) -> list:
    split = f"{m['owner_bps']}/{m['contributors_bps']}/{m['datanet_owners_bps']}"
    sources = ", ".join(f"{s['datanet_id']}@{s['version']}" for s in m.get("sources", []))
    owner = names.get(m["owner"], m["owner"])
    return [m["id"], owner, format_eth(int(m["price"])), split, sources, "yes" if m["active"] else "no"]


@command.command("list")
@pass_app
def list_(app: App) -> None:
    """List registered models."""
    app.sync()
    models = [as_dict(m) for m in app.catalog.list_models()]
    app.emit(
        models,
        table(
            "models",
            ["id", "owner", "price (OPEN)", "split", "datanets", "active"],
            [_model_row(m, app.names()) for m in models],
        ),
    )


@command.command("show")
@click.argument("model_id", type=CHAIN_ID)
@json_flag
@pass_app
def show(app: App, model_id: int, json_here: bool) -> None:
    """Show one model record and, when it points at one (sha256://), its provenance manifest."""
    from attribution_oracle.factory import ManifestError, load_manifest, manifest_digest_of_uri

    _json(app, json_here)
    app.sync()
    m = as_dict(app.catalog.get_model(model_id))
    manifest, note = None, ""
    try:
        digest = manifest_digest_of_uri(m["metadata_uri"])
        manifest = load_manifest(app.store, digest)
    except ManifestError as exc:
        note = str(exc)
    if app.json_output:
        app.emit({**m, "manifest": manifest, "manifestNote": note or None})
        return
    shown = {**m, "owner": app.name_of(m["owner"]), "price": f"{format_eth(int(m['price']))} OPEN"}
    app.console.print(table(f"model {model_id}", ["field", "value"], [[k, v] for k, v in shown.items()]))
    if manifest is None:
        app.say(f"no manifest: {note}")
        return
    app.console.print(table(f"manifest {digest[:16]}", ["field", "value"], _manifest_rows(manifest)))
    app.console.print(
        table(
            "training contributions (training order)",
            ["datanet", "contribution", "contributor", "sha256", "chunks (trained)", "tokens"],
            [
                [
                    c["datanet_id"],
                    c["contribution_id"],
                    c["contributor"],
                    c["sha256"][:16],
                    f"{c['chunks']} ({c['train_chunks']})",
                    c["train_tokens"],
                ]
                for c in manifest["contributions"]
            ],  # fmt: skip
        )
    )


def _manifest_rows(manifest: dict) -> list[list]:
    base, tok, hp = manifest["base_model"], manifest["tokenizer"], manifest["hyperparameters"]
    ev, grad, span = (
        manifest["metrics"]["eval"],
        manifest["attribution"]["gradient_index"],
        manifest["attribution"]["span_index"],
    )
    held_out = "-" if ev["loss"] is None else f"{ev['loss']:.4f} / {ev['perplexity']:.2f} ({ev['tokens']} tokens)"
    base_change = _held_out_change(manifest["metrics"].get("eval_base"), ev)
    datanets = ", ".join(f"{d['datanet_id']}@{d['version']} root {d['merkle_root'][:16]}" for d in manifest["datanets"])
    settings = (
        f"steps {hp['steps']}, batch {hp['batch_size']}, seq {hp['seq_len']}, lr {hp['lr']}, "
        f"rank {hp['rank']}, alpha {hp['alpha']}, seed {hp['seed']}"
    )
    return [
        ["base model", f"{base['name']} ({base['spec']}) {base['sha256'][:16]}"],
        ["tokenizer", f"{tok['class']} vocab {tok['vocab_size']} sha256 {tok['sha256'][:16]}"],
        ["datanets", datanets],
        ["adapter", manifest["adapter"]["sha256"]],
        ["hyperparameters", settings],
        ["held-out loss / ppl", held_out],
        ["held-out loss: base model -> tuned", base_change],
        ["checkpoints", ", ".join(f"step {c['step']} {c['adapter_sha256'][:16]}" for c in manifest["checkpoints"])],
        ["gradient index", f"{len(grad['files'])} files, {grad['estimator']}, projection {grad['proj_dim']}"],
        ["span index", "pending (not built)" if span is None else f"{len(span['files'])} files"],
        ["libraries", ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items())],
    ]


@command.command("earnings")
@click.argument("accounts", nargs=-1, required=True)
@pass_app
def earnings(app: App, accounts: tuple[str, ...]) -> None:
    """Show model owners' earnings: their share of served inferences, held by the InferenceMarket until withdrawn."""
    rows = []
    for name in accounts:
        address = app.address(name)
        rows.append({"account": name, "address": address, "earnings": str(app.reader.earnings(address))})
    app.emit(
        rows,
        table(
            "model owners' withdrawable earnings",
            ["account", "address", "OPEN"],
            [[r["account"], r["address"], format_eth(int(r["earnings"]))] for r in rows],
        ),
    )


@command.command("withdraw")
@from_option
@password_option
@pass_app
def withdraw(app: App, sender: str, password_file: Path | None) -> None:
    """Withdraw the sender's model-owner earnings from the InferenceMarket (the OPEN goes to the sender)."""
    signer = app.signer(sender, password_file)
    due = app.reader.earnings(signer.address)
    if due == 0:
        raise UserError(f"{sender} has no model-owner earnings to withdraw")
    market = app.contract("InferenceMarket")
    receipt = app.client.send(market.functions.withdrawEarnings(), signer, f"withdraw earnings of {sender}")
    app.result(
        {"account": signer.address, "amount": str(due), "tx": receipt["transactionHash"].to_0x_hex()},
        f"withdrew {format_eth(due)} OPEN of model-owner earnings to {sender}",
    )


@command.command("rates")
@click.argument("model_id", type=CHAIN_ID)
@click.option("--input-per-1k", required=True, help="OPEN per 1,000 input (prompt) tokens.")
@click.option("--output-per-1k", required=True, help="OPEN per 1,000 output tokens.")
@click.option("--flat", "flat_fee", default="0", show_default=True, help="Flat OPEN per call on top.")
@from_option
@password_option
@pass_app
def rates(app: App, model_id: int, input_per_1k: str, output_per_1k: str, flat_fee: str, sender, password_file) -> None:
    """Price MODEL_ID per token: a payment then authorizes a maximum and is charged its actual tokens."""
    from attribution_oracle.agent.pricing import set_token_rates

    values = (parse_amount(input_per_1k, "input rate"), parse_amount(output_per_1k, "output rate"))
    values += (parse_amount(flat_fee, "flat fee"),)
    set_token_rates(app.client, app.deployment, app.signer(sender, password_file), model_id, *values)
    app.result(
        {"modelId": model_id, "inputPer1k": str(values[0]), "outputPer1k": str(values[1]), "flatFee": str(values[2])},
        f"model {model_id}: {input_per_1k} OPEN per 1k input tokens, {output_per_1k} per 1k output, {flat_fee} flat",
    )
