"""The explorer's HTTP app: server-rendered pages (Jinja2, autoescaped), vendored static assets, a JSON
feed for live updates. Unknown ids give a 404 page, malformed addresses a 400; ``/api/`` answers JSON."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.explorer import pages
from attribution_oracle.explorer.explorer_state import Explorer

HERE = Path(__file__).parent
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class PageError(HTTPException):
    """An error page: 404 for unknown ids, 400 for malformed input."""


def parse_id(text: str, what: str) -> int:
    """A numeric id from a path; anything else is an unknown id (404)."""
    if not text.isdigit() or len(text) > 30:
        raise PageError(404, f"no {what} {text!r}")
    return int(text)


def parse_address(text: str) -> str:
    """A checksummed address; anything that is not 0x + 40 hex digits is a 400."""
    if not ADDRESS.match(text):
        raise PageError(400, f"{text!r} is not an address (0x followed by 40 hex digits)")
    return to_checksum_address(text)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["open"] = lambda wei: format_eth(int(wei))
    env.filters["short"] = lambda text: text if len(str(text)) <= 14 else f"{str(text)[:8]}…{str(text)[-4:]}"
    env.filters["score"] = lambda value: "—" if value is None else f"{value:.4g}"
    env.filters["pct"] = lambda value: f"{100 * value:.1f}%"
    return env


# (path, template, page builder): listing pages, built from the query parameters
LIST_PAGES = (
    ("/datanets", "datanets.html", pages.datanets),
    ("/models", "models.html", pages.models),
    ("/inferences", "inferences.html", pages.inferences),
    ("/contributors", "contributors.html", pages.contributors),
    ("/epochs", "epochs.html", pages.epochs),
    ("/leaderboards", "leaderboards.html", pages.leaderboards),
)
# (path, template, page builder, what the id names, the 404 message, whether the builder takes query parameters)
DETAIL_PAGES = (
    ("/datanets", "datanet.html", pages.datanet, "Datanet", "no Datanet {key}", True),
    ("/contributions", "contribution.html", pages.contribution, "contribution", "no contribution {key}", True),
    ("/models", "model.html", pages.model, "model", "no model {key}", True),
    ("/inferences", "inference.html", pages.inference, "inference", "no inference {key}", False),
    ("/epochs", "epoch.html", pages.epoch, "epoch", "no accepted report for epoch {key}", True),
)


def locked(build: Any, explorer: Explorer, *args: Any) -> Any:
    """Build a page's data under the explorer's lock (the poller mutates the ledger in another thread)."""
    with explorer.lock:
        return build(explorer, *args)


def create_app(explorer: Explorer) -> FastAPI:
    """The web app over ``explorer`` (which the caller refreshes, e.g. with ``explorer.start()``)."""
    app = FastAPI(title="attribution explorer", docs_url=None, redoc_url=None, openapi_url=None)
    env = _environment()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, request: Request, code: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, params=dict(request.query_params), nav=name.split(".")[0])
        context.setdefault("head_block", explorer.ledger.head_block)
        with explorer.lock:  # templates read ledger objects the poller may be updating
            html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=code)

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        title = {404: "Not found", 400: "Bad request"}.get(exc.status_code, "Error")
        return render("error.html", request, exc.status_code, title=title, message=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()) or "input"
        return await _error(request, PageError(400, f"malformed {fields}"))

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        return render("home.html", request, **locked(pages.home, explorer))

    def list_page(template: str, build: Any) -> Callable[[Request], HTMLResponse]:
        """A listing page: ``build(explorer, query params)`` rendered into ``template``."""

        def route(request: Request) -> HTMLResponse:
            return render(template, request, **locked(build, explorer, dict(request.query_params)))

        return route

    def detail_page(template: str, build: Any, what: str, missing: str, query: bool) -> Callable[..., HTMLResponse]:
        """One record's page by numeric id: 404 (``missing``) when ``build`` finds nothing."""

        def route(request: Request, key: str) -> HTMLResponse:
            args = (dict(request.query_params),) if query else ()
            found = locked(build, explorer, parse_id(key, what), *args)
            if found is None:
                raise PageError(404, missing.format(key=key))
            return render(template, request, **found)

        return route

    for path, template, build in LIST_PAGES:
        app.add_api_route(path, list_page(template, build), response_class=HTMLResponse, methods=["GET"])
    for path, template, build, what, missing, query in DETAIL_PAGES:
        route = detail_page(template, build, what, missing, query)
        app.add_api_route(path + "/{key}", route, response_class=HTMLResponse, methods=["GET"])

    @app.get("/api/inferences/{request_id}/signals")
    def signals(request_id: str):
        found = pages.inference_signals(explorer, parse_id(request_id, "inference"))
        if found is None:
            raise PageError(404, f"no inference {request_id}")
        return found

    @app.get("/contributors/{address}", response_class=HTMLResponse)
    def contributor(request: Request, address: str):
        return render(
            "contributor.html",
            request,
            **locked(pages.contributor, explorer, parse_address(address), dict(request.query_params)),
        )

    @app.get("/blobs/{digest}", response_class=HTMLResponse)
    def blob(request: Request, digest: str):
        if not DIGEST.match(digest):
            raise PageError(400, f"{digest!r} is not a sha256 digest (64 lowercase hex digits)")
        found = locked(pages.blob, explorer, digest)
        if found is None:
            raise PageError(404, f"the content store has no blob {digest}")
        return render("blob.html", request, **found)

    @app.get("/api/live")
    def live(after_inference: int = 0, after_epoch: int = 0):
        return locked(pages.live, explorer, after_inference, after_epoch)

    @app.get("/health")
    def health():
        return {"ok": not explorer.last_error, "head": explorer.ledger.head_block, "error": explorer.last_error}

    return app
