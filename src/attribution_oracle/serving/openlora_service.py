"""The OpenLoRA service: paid requests in, generations out, every served request recorded and marked on-chain.

``OpenLoraService`` ties the parts together (base model, adapter cache, LoRA pool, batch scheduler, payment
gate, served-record log, ``markServed`` worker); the HTTP layer (``api``) only translates. A request goes:

1. ``reserve``: the model must be served here; the request id must not be recorded or in flight here; the
   payment must match (``PaymentGate.check``), else ``PaymentRequiredError`` (HTTP 402);
2. ``generate``: queued in the continuous batch with the model's adapter;
3. ``finish``: the ``ServedRecord`` is written durably, then the receipt is queued for ``markServed``.

A model served with retrieval (``serve --rag``, ``retrievers``) gets, at ``reserve``, its ``top_k`` best
contributions for the paid prompt put in the model's context (``serving.rag_retriever``); the record lists them. The
metered input tokens stay those of the paid prompt (the context is the server's addition, not the payer's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError
from attribution_oracle.models import BaseModel
from attribution_oracle.serving.adapter_cache import AdapterCache
from attribution_oracle.serving.continuous_batching import BatchGenerator, GenerationRequest, stop_token_ids_of
from attribution_oracle.serving.multi_lora import LoraPool
from attribution_oracle.serving.payments import Payment, PaymentGate, PaymentRequiredError
from attribution_oracle.serving.quantised import quantise_base
from attribution_oracle.serving.rag_retriever import DEFAULT_TOP_K, Retriever, augment, check_top_k, retriever_for_model
from attribution_oracle.serving.scheduler import Scheduler
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.serving.server_metrics import ServingMetrics
from attribution_oracle.serving.settler import ServiceMarker
from attribution_oracle.store.blobs import BlobStore, bytes32_to_digest

__all__ = ["ModelNotServedError", "OpenLoraService", "ServedModel", "Ticket"]

log = logging.getLogger("attribution_oracle.serving")


class ModelNotServedError(UserError):
    """The requested model is not one this server serves (HTTP 404)."""


@dataclass(frozen=True)
class ServedModel:
    """A registered model this server answers for."""

    model_id: int
    adapter_hash: str
    owner: str
    price: int


@dataclass(frozen=True)
class Ticket:
    """A reserved, paid request about to be generated."""

    payment: Payment
    model: ServedModel
    prompt: str
    prompt_ids: tuple[int, ...]
    #: Contribution ids put in the context by retrieval (best first); empty without ``--rag``.
    retrieved: tuple[str, ...] = ()
    #: Tokens of the paid prompt alone (what a per-token payment meters); ``len(prompt_ids)`` without retrieval.
    paid_prompt_tokens: int | None = None


def resolve_models(
    client: ChainClient, deployment: Deployment, model_ids: list[int], base_hash: str
) -> list[ServedModel]:
    """Read models from the ModelRegistry; refuse inactive ones and ones registered for another base model."""
    from attribution_oracle.chain.reads import ChainReader

    reader = ChainReader(client, deployment)
    served = []
    for model_id in model_ids:
        record = reader.model(model_id)
        owner, base, adapter, price, active = (
            record.owner, record.base_model_hash, record.adapter_hash, record.price, record.active,
        )  # fmt: skip
        if not active:
            raise UserError(f"model {model_id} is inactive")
        if bytes32_to_digest(base) != base_hash:
            raise UserError(
                f"model {model_id} was registered for base model {bytes32_to_digest(base)[:16]}, "
                f"but this server runs {base_hash[:16]} (pass the right --base)"
            )
        served.append(ServedModel(model_id, bytes32_to_digest(adapter), owner, price))
    return served


class OpenLoraService:
    """One base model serving many adapters for paid, recorded requests."""

    def __init__(
        self,
        base: BaseModel,
        store: BlobStore,
        records: ServedRecordStore,
        models: list[ServedModel],
        gate: PaymentGate,
        operator: LocalAccount | None = None,
        memory_budget: int = 1 << 30,
        max_batch: int = 32,
        max_tokens_limit: int = 512,
        lora_mode: str = "auto",
        mark_interval_s: float = 0.5,
        base_precision: str = "auto",
        retrievers: dict[int, Retriever] | None = None,
        top_k: int = DEFAULT_TOP_K,
    ) -> None:
        """Build the service (nothing runs until ``start``); without ``operator`` nothing is marked on-chain.

        ``retrievers`` (model id -> ``Retriever``) serve those models with retrieval of ``top_k`` contributions.

        ``base_precision`` (``serving.quantised``): ``auto`` puts a model of hidden size >= 256 in smoothed W8A8
        int8 on a CPU with int8 dot products, else in bfloat16 where that is fast; ``int8`` / ``bf16`` always;
        ``none`` never.
        """
        self.base = base
        self.base_precision = quantise_base(base.model, base_precision, base.tokenizer)
        self.records = records
        self.models = {m.model_id: m for m in models}
        self.gate = gate
        self.max_tokens_limit = max_tokens_limit
        self.retrievers = dict(retrievers or {})
        self.top_k = check_top_k(top_k)
        self.metrics = ServingMetrics()
        self.cache = AdapterCache(
            store,
            base.sha256,
            memory_budget,
            dtype=next(base.model.parameters()).dtype,
            on_event=lambda name: self.metrics.adapter_events.labels(name).inc(),
        )
        self.pool = LoraPool(base.model, capacity=max_batch + 1, mode=lora_mode)
        tokenizer = base.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.engine = BatchGenerator(base.model, self.pool, self.cache.get, pad_token_id=pad, max_batch=max_batch)
        self.scheduler = Scheduler(self.engine, self.cache)
        self.marker = (
            ServiceMarker(
                gate,
                operator,
                interval_s=mark_interval_s,
                on_event=lambda name, count: self.metrics.mark_served.labels(name).inc(count),
            )
            if operator is not None
            else None
        )
        self.stop_token_ids = stop_token_ids_of(base.model, tokenizer)
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        self.started_at = time.time()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the batch thread and the markServed worker (re-queueing recorded, unmarked requests).

        Generation runs under ``torch.inference_mode`` in the batch thread; the caller's autograd mode is left alone.
        """
        self.scheduler.start()
        if self.marker is not None:
            recovered = self.marker.recover(self.records, self.metered_input_tokens)
            if recovered:
                log.info("re-queued %d served request(s) for markServed", recovered)
            self.marker.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop generating, try to mark what was served (bounded), stop the workers."""
        self.scheduler.stop(timeout_s)
        if self.marker is not None:
            self.marker.stop(timeout_s)
        self.cache.close()

    # -------------------------------------------------------------- requests

    def model(self, model: object) -> ServedModel:
        """The served model named by an API ``model`` field (its id, as int or string)."""
        try:
            model_id = int(str(model))
        except ValueError:
            raise ModelNotServedError(f"model {model!r} is not a model id") from None
        found = self.models.get(model_id)
        if found is None:
            served = ", ".join(map(str, sorted(self.models))) or "none"
            raise ModelNotServedError(f"model {model_id} is not served here (served: {served})")
        return found

    def reserve(self, model: object, prompt: str, request_id: int | None) -> Ticket:
        """Check the request and claim its id (see the module docstring); raises 402/404 errors."""
        served = self.model(model)
        if request_id is None:
            raise PaymentRequiredError(
                "no request_id: pay with InferenceMarket.payForInference(modelId, sha256(prompt), maxFee) and send "
                "the request id as the body field request_id or the X-Request-Id header",
                "missing_request_id",
            )
        with self._lock:
            if request_id in self._in_flight:
                raise PaymentRequiredError(f"request {request_id} is being served", "in_flight", request_id)
            self._in_flight.add(request_id)
        try:
            if self.records.get(request_id) is not None:
                raise PaymentRequiredError(
                    f"request {request_id} was already served by this server", "already_served", request_id
                )
            payment = self.gate.check(request_id, served.model_id, prompt)
            prompt_ids = tuple(self.base.tokenizer(prompt, add_special_tokens=False).input_ids)
            if not prompt_ids:
                raise PaymentRequiredError("the prompt is empty", "empty_prompt", request_id)
            retriever = self.retrievers.get(served.model_id)
            retrieved = retriever.retrieve(prompt, self.top_k) if retriever is not None else []
            paid_tokens = len(prompt_ids)
            if retrieved:
                prompt_ids = tuple(self.base.tokenizer(augment(prompt, retrieved), add_special_tokens=False).input_ids)
        except BaseException:
            self.release(request_id)
            raise
        ids = tuple(r.contribution_id for r in retrieved)
        return Ticket(payment, served, prompt, prompt_ids, ids, paid_tokens)

    def release(self, request_id: int) -> None:
        """Forget an in-flight request id (after it was recorded or abandoned)."""
        with self._lock:
            self._in_flight.discard(request_id)

    def generate(
        self,
        ticket: Ticket,
        max_tokens: int = 16,
        temperature: float = 0.0,
        on_token: Callable[[int], None] | None = None,
        on_finish: Callable[[], None] | None = None,
    ) -> GenerationRequest:
        """Queue the ticket's generation in the batch."""
        max_tokens = max(1, min(int(max_tokens), self.max_tokens_limit))
        request = GenerationRequest(
            prompt_ids=list(ticket.prompt_ids),
            adapter_hash=ticket.model.adapter_hash,
            max_tokens=max_tokens,
            temperature=float(temperature),
            seed=ticket.payment.request_id,
            stop_token_ids=self.stop_token_ids,
            on_token=on_token,
            on_finish=on_finish,
        )
        self.metrics.waiting.set(len(self.engine.waiting) + 1)
        return self.scheduler.submit(request)

    def finish(self, ticket: Ticket, request: GenerationRequest) -> ServedRecord:
        """Record a finished generation durably, then queue its markServed; raises if it failed."""
        request_id = ticket.payment.request_id
        try:
            if request.error is not None:
                self.metrics.requests.labels("error").inc()
                raise request.error
            record = ServedRecord(
                request_id=request_id,
                model_id=ticket.model.model_id,
                adapter_hash=ticket.model.adapter_hash,
                prompt=ticket.prompt,
                prompt_token_ids=ticket.prompt_ids,
                output_token_ids=tuple(request.output_ids),
                output_text=self.decode(request.output_ids),
                served_at=time.time(),
                retrieved=ticket.retrieved,
            )
            self.records.add(record)
        finally:
            self.release(request_id)
        self.metrics.requests.labels("served").inc()
        self.metrics.tokens.inc(len(request.output_ids))
        self.metrics.latency.observe(time.monotonic() - request.queued_at)
        self.metrics.adapter_bytes.set(self.cache.bytes)
        self.metrics.batch_rows.set(len(self.engine.rows))
        if self.marker is not None:
            paid = ticket.paid_prompt_tokens if ticket.paid_prompt_tokens is not None else len(record.prompt_token_ids)
            tokens = (paid, len(record.output_token_ids))
            self.marker.enqueue(ticket.payment.receipt, ticket.payment.meter, tokens)
            self.metrics.mark_pending.set(self.marker.pending)
        return record

    def metered_input_tokens(self, record: ServedRecord) -> int:
        """Input tokens a payment meters for ``record``: the paid prompt's (retrieved passages are not billed)."""
        if not record.retrieved:
            return len(record.prompt_token_ids)
        return len(self.base.tokenizer(record.prompt, add_special_tokens=False).input_ids)

    def decode(self, token_ids: list[int]) -> str:
        """Text of generated tokens (special tokens such as the end-of-sequence one are dropped)."""
        return self.base.tokenizer.decode(token_ids, skip_special_tokens=True)

    def health(self) -> dict:
        """What ``GET /health`` reports."""
        return {
            "status": "ok",
            "base_model": {"name": self.base.name, "sha256": self.base.sha256},
            "models": sorted(self.models),
            "rag": {"models": sorted(self.retrievers), "top_k": self.top_k} if self.retrievers else None,
            "running": len(self.engine.rows),
            "waiting": len(self.engine.waiting),
            "cached_adapters": len(self.cache.cached()),
            "cache_bytes": self.cache.bytes,
            "served": self.records.count(),
            "mark_served_pending": self.marker.pending if self.marker is not None else None,
            "uptime_s": round(time.time() - self.started_at, 3),
        }

    @classmethod
    def from_chain(
        cls,
        client: ChainClient,
        deployment: Deployment,
        base: BaseModel,
        store: BlobStore,
        records_path: Path,
        model_ids: list[int],
        operator: LocalAccount | None = None,
        facilitator: LocalAccount | None = None,
        rag: bool = False,
        **options,
    ) -> OpenLoraService:
        """A service for ``model_ids`` as registered on ``deployment``; every adapter is verified up front.

        With ``rag`` every model serves with retrieval over its own training data (``serving.rag_retriever``); a model
        without a lexical index is refused with ``RetrievalError`` before anything loads.

        With an ``operator`` and an AgentVault in the deployment, unpaid requests are offered x402 payment;
        ``facilitator`` (default: the operator) submits those settlements."""
        models = resolve_models(client, deployment, model_ids, base.sha256)
        if rag:
            check_top_k(options.get("top_k", DEFAULT_TOP_K))
            options["retrievers"] = {
                m.model_id: retriever_for_model(client, deployment, store, m.model_id) for m in models
            }
        if operator is not None:
            market = client.contract(deployment, "InferenceMarket")
            if not client.call(market.functions.isOperator(operator.address)):
                raise UserError(
                    f"{operator.address} is not an InferenceMarket operator (governance appoints operators with "
                    "setOperator; `deploy --operator` does it at deployment)"
                )
        service = cls(
            base, store, ServedRecordStore(records_path), models, PaymentGate(client, deployment), operator, **options
        )
        if operator is not None and "AgentVault" in deployment.contracts:  # x402: pay per call from a vault
            from attribution_oracle.serving.x402 import X402Gate

            tokenizer = base.tokenizer
            service.x402 = X402Gate(
                client,
                deployment,
                operator,
                lambda prompt: len(tokenizer(prompt, add_special_tokens=False).input_ids),
                service.marker.send_lock if service.marker is not None else None,
                facilitator,
            )
        try:
            for served in models:  # fail at start, not at the first request, on a missing or tampered adapter
                service.cache.get(served.adapter_hash)
        except BaseException:
            service.cache.close()
            raise
        return service
