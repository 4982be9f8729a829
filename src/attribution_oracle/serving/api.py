"""The HTTP API (FastAPI): OpenAI-compatible completions over paid on-chain requests.

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (both with ``stream: true`` over SSE),
``POST /v1/chat/render`` (the canonical chat prompt to hash and pay for), ``GET /v1/models``, ``GET /health``,
``GET /metrics`` (Prometheus) and ``GET /v1/served?after=N&limit=M`` (the served-record log, for oracles).

Errors are OpenAI-shaped: ``{"error": {"message", "type", "code", ...}}``; an unpaid, replayed or mismatched
request gets HTTP 402 with ``type: "payment_required"`` and a ``code`` among ``missing_request_id``,
``unpaid``, ``model_mismatch``, ``prompt_mismatch``, ``already_served``, ``refunded``, ``in_flight``,
``service_window_closing``.

A model served with retrieval (``serve --rag``) answers with ``retrieved``: the contribution ids placed in its
context, best first (the citations the oracle pays, ``serving.rag_retriever``).

Limits (checked before any payment lookup): a body above ``MAX_BODY_BYTES`` gets 413 before it is parsed
(by ``Content-Length`` or while reading it), and every field is bounded (``FIELD_LIMITS``). ``GET /v1/served``
answers only the oracle nodes (``served_access``), else 401. A stream whose client hangs up after the first
token was sent is still recorded (with the tokens generated so far) and its ``markServed`` queued, so it can
neither be served again nor refunded; before the first token it is released (and stays refundable).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from attribution_oracle.errors import UserError
from attribution_oracle.serving.chat import ChatFormatError, render_chat
from attribution_oracle.serving.openlora_service import ModelNotServedError, OpenLoraService, Ticket
from attribution_oracle.serving.payments import PaymentRequiredError
from attribution_oracle.serving.served_access import ServedAccess

__all__ = ["create_app"]


MAX_BODY_BYTES = 256 * 1024
#: Upper bounds of the request fields (characters, items or values).
FIELD_LIMITS = {
    "prompt": 65_536,
    "messages": 128,
    "model": 80,
    "request_id": 80,
    "max_tokens": 4_096,
    "temperature": 100,
}


class BadRequestError(UserError):
    """A malformed request body (HTTP 400)."""


class PayloadTooLargeError(UserError):
    """A request body above ``MAX_BODY_BYTES`` (HTTP 413)."""


def _bounded(name: str, value: object) -> None:
    limit = FIELD_LIMITS[name]
    size = len(value) if isinstance(value, (str, list)) else None
    if size is not None and size > limit:
        raise BadRequestError(f"{name} is too long ({size} > {limit})")


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


def _request_id(body: dict, request: Request) -> int | None:
    value = body.get("request_id", request.headers.get("x-request-id"))
    if value is None:
        return None
    _bounded("request_id", str(value))
    try:
        request_id = int(str(value))
    except ValueError:
        raise BadRequestError(f"request_id {value!r} is not an integer") from None
    if request_id <= 0:
        raise BadRequestError("request_id must be positive")
    return request_id


def _model_field(body: dict) -> object:
    if body.get("model") is None:
        raise BadRequestError("model is required (a served model id, see GET /v1/models)")
    return body["model"]


def _limits(body: dict) -> tuple[int, float]:
    try:
        max_tokens = int(body.get("max_tokens") or 16)
        temperature = float(body.get("temperature") or 0.0)
    except (TypeError, ValueError):
        raise BadRequestError("max_tokens must be an integer and temperature a number") from None
    if max_tokens <= 0 or temperature < 0:
        raise BadRequestError("max_tokens must be positive and temperature non-negative")
    if max_tokens > FIELD_LIMITS["max_tokens"] or temperature > FIELD_LIMITS["temperature"]:
        most = (FIELD_LIMITS["max_tokens"], FIELD_LIMITS["temperature"])
        raise BadRequestError(f"max_tokens must be at most {most[0]} and temperature at most {most[1]}")
    if "model" in body:
        _bounded("model", str(body["model"]))
    return max_tokens, temperature


async def _read_bounded(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``MAX_BODY_BYTES`` (never read in full)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body is {declared} bytes; at most {MAX_BODY_BYTES} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> dict:
    raw = await _read_bounded(request)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequestError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def _completion_prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequestError("prompt must be a string (one prompt per paid request)")
    _bounded("prompt", prompt)
    return prompt


def _chat_messages(body: dict) -> object:
    messages = body.get("messages")
    if isinstance(messages, list):
        _bounded("messages", messages)
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                _bounded("prompt", message["content"])
    return messages


def create_app(service: OpenLoraService) -> FastAPI:
    """The FastAPI application serving ``service``."""
    app = FastAPI(title="OpenLoRA", description="Many LoRA adapters over one base model, paid per request.")
    access = ServedAccess(service.gate.client, service.gate.deployment)

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(_: Request, exc: PayloadTooLargeError) -> JSONResponse:
        return _error(413, str(exc), "invalid_request_error", "payload_too_large")

    @app.exception_handler(PaymentRequiredError)
    async def _payment(_: Request, exc: PaymentRequiredError) -> JSONResponse:
        service.metrics.requests.labels("payment_required").inc()
        headers = exc.headers() if hasattr(exc, "headers") else None  # x402: PAYMENT-REQUIRED
        return JSONResponse(exc.body(), status_code=402, headers=headers)

    async def _reserve(body: dict, prompt: str, request: Request) -> tuple[Ticket, str | None]:
        """Claim a paid request: by ``request_id`` (pay-first), else over x402 when the server offers it."""
        request_id, settled = _request_id(body, request), None
        gate = getattr(service, "x402", None)
        if request_id is None and gate is not None:
            model_id = service.model(_model_field(body)).model_id
            if not prompt.strip():  # refuse before anyone pays for a request that cannot be served
                raise BadRequestError("the prompt is empty")
            header, url = request.headers.get("payment-signature"), str(request.url)
            max_tokens = min(_limits(body)[0], service.max_tokens_limit)  # what generation can use at most
            settlement = await run_in_threadpool(gate.handle, header, model_id, prompt, max_tokens, url)
            request_id, settled = settlement.request_id, settlement.header
        ticket = await run_in_threadpool(service.reserve, _model_field(body), prompt, request_id)
        return ticket, settled

    def _with_receipt(response: Response, settled: str | None) -> Response:
        if settled is not None:
            response.headers["PAYMENT-RESPONSE"] = settled
        return response

    @app.exception_handler(ModelNotServedError)
    async def _not_served(_: Request, exc: ModelNotServedError) -> JSONResponse:
        return _error(404, str(exc), "invalid_request_error", "model_not_found")

    @app.exception_handler(UserError)
    async def _bad(_: Request, exc: UserError) -> JSONResponse:
        return _error(400, str(exc), "invalid_request_error")

    async def _run(ticket: Ticket, body: dict, chat: bool) -> Response:
        max_tokens, temperature = _limits(body)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        request = service.generate(
            ticket,
            max_tokens,
            temperature,
            on_token=lambda token: loop.call_soon_threadsafe(queue.put_nowait, token),
            on_finish=lambda: loop.call_soon_threadsafe(queue.put_nowait, None),
        )
        created = int(time.time())
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{ticket.payment.request_id}"
        model = str(ticket.model.model_id)
        extra = {"request_id": ticket.payment.request_id, "adapter_hash": ticket.model.adapter_hash}
        if ticket.retrieved:  # serve --rag: the contributions placed in the context (the answer's citations)
            extra["retrieved"] = list(ticket.retrieved)
        if max_tokens > service.max_tokens_limit:  # said, not silent: the generation stops at the server's cap
            extra["max_tokens"] = service.max_tokens_limit
            extra["warning"] = f"max_tokens {max_tokens} was capped to this server's limit {service.max_tokens_limit}"

        def usage(record) -> dict:
            prompt_tokens, completion_tokens = len(record.prompt_token_ids), len(record.output_token_ids)
            counts = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if record.retrieved:  # the model read the passages too, but only the paid prompt's tokens are metered
                counts["billed_prompt_tokens"] = service.metered_input_tokens(record)
            return counts

        if not body.get("stream"):
            while await queue.get() is not None:
                pass
            record = await run_in_threadpool(service.finish, ticket, request)
            if chat:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": record.output_text},
                    "finish_reason": request.finish_reason,
                }
            else:
                choice = {
                    "index": 0,
                    "text": record.output_text,
                    "finish_reason": request.finish_reason,
                    "logprobs": None,
                }
            kind = "chat.completion" if chat else "text_completion"
            return JSONResponse(
                {
                    "id": ident,
                    "object": kind,
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage(record),
                    **extra,
                }
            )

        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(text: str | None, finish: str | None, first: bool = False, tail: dict | None = None) -> str:
            if chat:
                delta = {"role": "assistant"} if first else ({"content": text} if text else {})
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
            data = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice], **extra}
            return f"data: {json.dumps({**data, **(tail or {})})}\n\n"

        first_token_sent = False

        def record_after_hang_up() -> None:
            """The client left after tokens were sent: record what was generated and queue markServed."""
            request.wait(60.0)
            try:
                service.finish(ticket, request)
            except Exception:  # noqa: BLE001 - the generation failed: the payment stays refundable
                service.release(ticket.payment.request_id)

        async def events() -> AsyncIterator[str]:
            nonlocal first_token_sent
            recorded = False
            try:
                if chat:
                    yield chunk(None, None, first=True)
                sent = ""
                while (token := await queue.get()) is not None:
                    text = service.decode(request.output_ids)
                    if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
                        continue
                    if len(text) > len(sent) and text.startswith(sent):
                        first_token_sent = True
                        yield chunk(text[len(sent) :], None)
                        sent = text
                    del token
                record = await run_in_threadpool(service.finish, ticket, request)
                recorded = True
                if record.output_text.startswith(sent) and len(record.output_text) > len(sent):
                    yield chunk(record.output_text[len(sent) :], None)
                yield chunk(None, request.finish_reason, tail={"usage": usage(record)})
                yield "data: [DONE]\n\n"
            except Exception as exc:  # noqa: BLE001 - reported in the stream, the payment stays refundable
                yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
            finally:
                if not recorded:
                    request.cancelled = True
                    if first_token_sent:
                        threading.Thread(target=record_after_hang_up, name="record-hang-up", daemon=True).start()
                    else:
                        service.release(ticket.payment.request_id)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await _json_body(request)
        prompt = _completion_prompt(body)
        _limits(body)
        ticket, settled = await _reserve(body, prompt, request)
        return _with_receipt(await _run(ticket, body, chat=False), settled)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request)
        prompt = render_chat(service.base.tokenizer, _chat_messages(body))
        _limits(body)
        ticket, settled = await _reserve(body, prompt, request)
        return _with_receipt(await _run(ticket, body, chat=True), settled)

    @app.post("/v1/chat/render")
    async def chat_render(request: Request) -> Response:
        body = await _json_body(request)
        try:
            prompt = render_chat(service.base.tokenizer, _chat_messages(body))
        except ChatFormatError as exc:
            raise BadRequestError(str(exc)) from None
        from attribution_oracle.serving.payments import prompt_hash

        return JSONResponse({"prompt": prompt, "input_hash": "0x" + prompt_hash(prompt).hex()})

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "id": str(m.model_id),
                    "object": "model",
                    "created": int(service.started_at),
                    "owned_by": m.owner,
                    "adapter_hash": m.adapter_hash,
                    "price_wei": str(m.price),
                    "base_model": service.base.sha256,
                }
                for m in service.models.values()
            ],
        }

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict:
        served = str(service.model(model_id).model_id)  # 404 for a model not served here
        return next(card for card in (await models())["data"] if card["id"] == served)

    @app.get("/health")
    async def health() -> dict:
        return await run_in_threadpool(service.health)

    @app.get("/metrics")
    async def metrics() -> Response:
        service.metrics.batch_rows.set(len(service.engine.rows))
        service.metrics.waiting.set(len(service.engine.waiting))
        service.metrics.adapter_bytes.set(service.cache.bytes)
        if service.marker is not None:
            service.metrics.mark_pending.set(service.marker.pending)
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/served")
    async def served(request: Request, after: int = 0, limit: int = 100) -> Response:
        if after < 0 or not 1 <= limit <= 1000:
            raise BadRequestError("after must be >= 0 and limit between 1 and 1000")
        allowed, why = await run_in_threadpool(access.allowed, request.headers, after, limit)
        if not allowed:
            return _error(401, f"GET /v1/served is for the oracle nodes: {why}", "authentication_error", "unauthorized")
        records = await run_in_threadpool(service.records.after, after, limit)
        return JSONResponse({"records": [r.to_dict() for r in records]})

    return app
