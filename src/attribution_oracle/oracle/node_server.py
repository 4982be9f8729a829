"""The node's HTTP server: signature exchange, reports by digest, status, /health and Prometheus /metrics."""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from attribution_oracle.oracle.peers import verify_push

HEALTHY_WITHIN_S = 60.0
MAX_PUSH_BYTES = 16 * 1024


class ServedNode(Protocol):
    """What the HTTP server needs of a node (``oracle.oracle_node.OracleNode`` provides it; no import of the node)."""

    signer: Any  # .address
    db: Any  # .cursor()
    metrics: Any  # .render()
    consensus: Any  # .signatures(epoch), .receive(body)
    client: Any  # the chain client (peer pushes are checked against the on-chain signer set)
    store: Any  # .has(digest), .get(digest)
    last_error: str | None

    def seconds_since_progress(self) -> float:
        """Seconds since the node last made progress."""
        ...

    def status(self) -> dict:
        """The node's state for ``/v1/status``."""
        ...


def make_app(node: ServedNode) -> FastAPI:
    """The FastAPI app of ``node``."""
    app = FastAPI(title="attribution-oracle node", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        stale = node.seconds_since_progress()
        body = {"ok": stale < HEALTHY_WITHIN_S, "signer": node.signer.address, "secondsSinceProgress": round(stale, 3),
                "cursor": node.db.cursor()[0] if node.db.cursor() else None, "lastError": node.last_error}  # fmt: skip
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(node.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/status")
    def status() -> dict:
        return node.status()

    @app.get("/v1/signatures")
    def signatures(epoch: int) -> dict:
        return {"signatures": node.consensus.signatures(epoch)}

    @app.post("/v1/signatures")
    async def post_signature(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > MAX_PUSH_BYTES:
            raise HTTPException(413, "a signature push is a few hundred bytes")
        signers, _ = node.consensus.oracle_set()
        refused = verify_push(request.headers, raw, node.client.chain_id, signers)
        if refused is not None:
            raise HTTPException(401, refused)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise HTTPException(400, "expected a JSON signature") from exc
        if not isinstance(body, dict) or not node.consensus.receive(body):
            raise HTTPException(400, "invalid signature or signer outside the oracle set")
        return {"accepted": True}

    @app.get("/v1/reports/{digest}")
    def report(digest: str) -> Response:
        try:
            if not node.store.has(digest):
                raise HTTPException(404, "no such report")
            return Response(node.store.get(digest), media_type="application/json")
        except ValueError as exc:  # malformed digest
            raise HTTPException(400, str(exc)) from exc

    return app


class HttpServer:
    """Uvicorn running the app in a background thread (the node loop keeps the main thread and signals)."""

    def __init__(self, node: ServedNode, host: str, port: int) -> None:
        """Serve ``node`` on ``host:port``."""
        config = uvicorn.Config(make_app(node), host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="oracle-http", daemon=True)

    def start(self, timeout_s: float = 15.0) -> None:
        """Start and wait until it listens."""
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                from attribution_oracle.errors import UserError

                raise UserError(f"the oracle HTTP server could not listen on port {self.server.config.port}")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
