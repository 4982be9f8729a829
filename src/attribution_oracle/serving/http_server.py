"""Running the HTTP server: in the foreground for the CLI, or on a background thread for tests and demos.

In-process use::

    service = OpenLoraService.from_chain(client, deployment, base, store, records_path, [1, 2], operator)
    with ServerThread(service, port=0) as server:      # port 0: any free port
        httpx.post(f"{server.url}/v1/completions", json={...})

``ServerThread`` starts the service (batch thread, markServed worker) and uvicorn, waits until the socket
accepts connections (bounded), and on exit stops uvicorn, then the service, each within a timeout.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import uvicorn

from attribution_oracle.errors import UserError
from attribution_oracle.serving.api import create_app
from attribution_oracle.serving.openlora_service import OpenLoraService

__all__ = ["ServerThread", "serve_forever"]

log = logging.getLogger("attribution_oracle.serving")


def _config(service: OpenLoraService, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(service), host=host, port=port, log_level=log_level, lifespan="off", timeout_graceful_shutdown=10
    )


class ServerThread:
    """uvicorn serving ``service`` on a daemon thread; a context manager that always stops both."""

    def __init__(
        self, service: OpenLoraService, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        """Serve on ``host:port`` (``port=0`` picks a free one; see ``url`` after ``start``)."""
        self.service = service
        self.server = uvicorn.Server(_config(service, host, port, log_level))
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        """Start the service and the HTTP server; returns once it listens."""
        self.service.start()
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the server did not start on {self.host}:{self.port} within {timeout_s}s")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting requests, finish open ones (bounded), then stop the service."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(5)
        self.service.stop(timeout_s)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _ForegroundServer(uvicorn.Server):
    """uvicorn's server, except that SIGINT/SIGTERM are not re-raised after the graceful shutdown.

    uvicorn re-raises the signal it caught once it stopped, which would kill the process before the service
    could mark what it served on-chain; here the caller stops the service and returns normally instead.
    """

    def handle_exit(self, sig, frame) -> None:
        """Ask the server to stop (a second SIGINT forces it) without re-raising the signal afterwards."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def serve_forever(service: OpenLoraService, host: str, port: int, log_level: str = "info") -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then stop the service cleanly (pending markServed first)."""
    service.start()
    try:
        _ForegroundServer(_config(service, host, port, log_level)).run()
    finally:
        log.info("stopping: marking what was served, then exiting")
        service.stop()
