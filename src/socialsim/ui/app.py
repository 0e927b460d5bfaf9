"""The UI's FastAPI app: corpus browsing (`socialsim.ui.browse`) and blind studies
(`socialsim.ui.annotate`), rendered from autoescaped Jinja2 templates (``ui/templates/*.j2``).

No JavaScript: pages are plain HTML forms with a strict Content Security Policy. Tokens live in
paths (``/s/<annotator token>``, ``/a/<admin token>``); uvicorn's access log is off, so they are
never logged, and ``Referrer-Policy: same-origin`` keeps them out of Referer headers sent to other sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request

from socialsim.templating import make_env
from socialsim.ui.index import CorpusIndex
from socialsim.ui.security import MAX_BODY_BYTES, Guard
from socialsim.ui.study import Study

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


@dataclass
class UIState:
    sources: list[CorpusIndex]
    study: Study | None
    browse: bool
    env: Any = field(default=None)

    def render(self, template: str, /, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("browse", self.browse)
        html = self.env.get_template(template).render(**ctx)
        return HTMLResponse(html, status_code=status)


def _css() -> bytes:
    return files("socialsim.ui").joinpath("static/ui.css").read_bytes()


def create_app(
    sources: list[CorpusIndex],
    study: Study | None = None,
    *,
    browse: bool = True,
    allowed_hosts: list[str] | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The app over opened corpus indexes and an optional study. `browse=False` serves only the study
    pages (for annotators on another machine: they must not see which system wrote what).
    `allowed_hosts` guards against DNS rebinding (the CLI passes the loopback names when bound there)."""
    from socialsim.ui import annotate
    from socialsim.ui import browse as browse_routes

    env = make_env("socialsim.ui")
    env.autoescape = True
    state = UIState(sources=sources, study=study, browse=browse, env=env)
    app = FastAPI(title="socialsim ui", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = state
    css = _css()

    @app.get("/static/ui.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"cache-control": "max-age=3600"})

    @app.get("/health", include_in_schema=False)
    def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        text = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, str(exc.detail))
        return state.render("message.j2", status=exc.status_code, title=str(exc.status_code), message=text)

    if browse:
        browse_routes.register(app, state)
    annotate.register(app, state)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(Guard, limit=max_body)  # added last: the outermost layer, so every response has the headers
    return app


def serve_ui(
    paths: list[str],
    study_path: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    browse: bool | None = None,
    on_ready: Any = None,
    on_progress: Any = None,
) -> None:
    """Open the corpora (building their indexes) and the study, then serve until Ctrl-C.
    Browsing is on by default only on a loopback address. Raises `UserError` for a bad path, a bad
    study file, or a port that is taken."""
    import asyncio

    from socialsim.errors import UserError
    from socialsim.serve.app import serve_app

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    loopback = host in LOOPBACK_HOSTS
    browse = loopback if browse is None else browse
    if not paths and study_path is None:
        raise UserError("give at least one run folder or corpus file to browse, or --study FILE")
    if not loopback:
        import sys

        shown = "the corpus pages and " if browse else ""
        print(f"warning: serving {shown}the study pages on {host}: anyone who can reach it and has a link can use it "
              "(no TLS; put it behind an HTTPS proxy on an untrusted network)", file=sys.stderr)  # fmt: skip
    study = Study.open(study_path) if study_path else None  # ``on_progress(path, indexed, total)``
    sources: list[CorpusIndex] = []
    try:
        for p in paths:
            report = (lambda done, total, p=p: on_progress(p, done, total)) if on_progress else None
            sources.append(CorpusIndex.open(p, progress=report))
        app = create_app(sources, study, browse=browse, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
        try:
            asyncio.run(serve_app(app, host, port, on_ready=on_ready, access_log=False))
        except KeyboardInterrupt:
            pass
    finally:
        for s in sources:
            s.close()
        if study is not None:
            study.close()
