"""Browsing routes: the opened corpora (``/``), a filtered, paged list (``/c/<n>``) and one dialogue
(``/c/<n>/d/<row>``). Filters are GET parameters, so every view is a link."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from starlette.requests import Request

from socialsim.schema import DISCLOSURE_LAYERS
from socialsim.ui.index import RISK_FILTERS, STRATEGIES, CorpusIndex, Filters

END_REASONS = ("seeker_goodbye", "turn_cap", "failure")
STATUSES = ("ok", "failed")


def _source(state: Any, n: int) -> CorpusIndex:
    if not 0 <= n < len(state.sources):
        raise HTTPException(404)
    return state.sources[n]


def filters_from(request: Request) -> Filters:
    q = request.query_params
    return Filters(**{k: q.get(k, "")[:200].strip() for k in Filters.__dataclass_fields__})


def register(app: FastAPI, state: Any) -> None:
    @app.get("/", response_class=HTMLResponse)
    def home() -> HTMLResponse:
        sources = [{"n": i, "name": s.name, "path": str(s.source), "format": s.format, "count": len(s)}
                   for i, s in enumerate(state.sources)]  # fmt: skip
        return state.render("home.j2", title="Corpora", sources=sources, study=state.study is not None)

    @app.get("/c/{n}", response_class=HTMLResponse)
    def listing(n: int, request: Request) -> HTMLResponse:
        src = _source(state, n)
        src.refresh()
        f = filters_from(request)
        try:
            page_no = int(request.query_params.get("page", "1"))
        except ValueError:
            page_no = 1
        page = src.page(f, page_no)
        query = f.as_query()

        def page_url(p: int) -> str:
            return f"/c/{n}?" + urlencode({**query, "page": p})

        facets = src.facets()
        menus = {
            "problem": [(v, f"{v} ({c})") for v, c in facets["problem"]],
            "emotion": [(v, f"{v} ({c})") for v, c in facets["emotion"]],
            "end_reason": [(v, v) for v in sorted({*END_REASONS, *(v for v, _ in facets["end_reason"])})],
            "status": [(v, v) for v in STATUSES],
            "strategy": [(s.value, s.value) for s in STRATEGIES],
            "risk": [(k, k) for k in RISK_FILTERS],
        }
        return state.render(
            "list.j2", title=src.name, n=n, src=src, page=page, filters=f, menus=menus, page_url=page_url,
            back=urlencode({**query, "page": page.page}), ms=round(page.seconds * 1000, 1),
        )  # fmt: skip

    @app.get("/c/{n}/d/{row}", response_class=HTMLResponse)
    def dialogue(n: int, row: int, request: Request) -> HTMLResponse:
        src = _source(state, n)
        hit = src.get(row)
        if hit is None:
            raise HTTPException(404)
        d, meta = hit
        back = request.query_params.get("back", "")[:2000]
        return state.render(
            "dialogue.j2", title=f"Dialogue {d.id}", n=n, src=src, d=d, meta=meta, layers=DISCLOSURE_LAYERS,
            usage=d.usage, back=back, row=row,
        )  # fmt: skip
