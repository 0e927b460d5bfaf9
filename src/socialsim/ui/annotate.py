"""Study routes: an annotator's page (``/s/<token>``: the next item, or thanks when all are done),
their form post (``/s/<token>/answer``), the admin page (``/a/<token>``) and its exports.

A wrong or missing token is a plain 404 (it says nothing about which tokens exist). Every post
must carry the page's CSRF field and come from this origin; it is saved in one transaction and the
browser is redirected (post, redirect, get), so a reload never posts twice."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.requests import Request

from socialsim.ui.results import export_csv, export_json, summarise
from socialsim.ui.security import read_form, same_origin
from socialsim.ui.study import CHOICES, Annotator, Study

NOTICES = {
    "saved": "Answer saved.",
    "duplicate": "You had already answered that item (perhaps in another tab); your first answer is kept.",
}


def register(app: FastAPI, state: Any) -> None:
    def study() -> Study:
        if state.study is None:
            raise HTTPException(404)
        return state.study

    def annotator(token: str) -> tuple[Study, Annotator]:
        s = study()
        a = s.annotator(token)
        if a is None:
            raise HTTPException(404)
        return s, a

    def item_page(s: Study, a: Annotator, token: str, notice: str = "", error: str = "", status: int = 200,
                  picked: dict[str, str] | None = None, comment: str = "") -> HTMLResponse:  # fmt: skip
        item, done, total = s.next_item(a)
        if item is None:
            return state.render("done.j2", title="Thank you", total=total, name=a.name, notice=notice, browse=False)
        return state.render(
            "item.j2", status=status, title=f"Item {done + 1} of {total}", item=item, done=done, total=total,
            token=token, csrf=s.csrf_token(a.token_hash), dims=s.dimensions, questions=s.meta.get("questions", {}),
            choices=CHOICES, notice=notice, error=error, picked=picked or {}, comment=comment, name=a.name,
            browse=False,  # no link to the corpora from a blind item
        )  # fmt: skip

    @app.get("/s/{token}", response_class=HTMLResponse)
    def annotate_page(token: str, request: Request) -> HTMLResponse:
        s, a = annotator(token)
        return item_page(s, a, token, notice=NOTICES.get(request.query_params.get("notice", ""), ""))

    @app.post("/s/{token}/answer", response_model=None)
    async def answer(token: str, request: Request) -> Response:
        s, a = annotator(token)
        if not same_origin(request):
            return state.render("message.j2", status=403, title="Refused", message="Cross-site form post refused.")
        try:
            form = await read_form(request)
        except ValueError as e:
            return state.render("message.j2", status=400, title="Bad form", message=str(e))
        if not s.check_csrf(a.token_hash, form.get("csrf", "")):
            return state.render("message.j2", status=403, title="Refused", message="The form's CSRF token is wrong.")
        try:
            item_id = int(form.get("item", ""))
        except ValueError:
            return state.render("message.j2", status=400, title="Bad form", message="The form names no item.")
        sides = {d: form.get(f"dim_{d}", "") for d in s.dimensions}
        comment = form.get("comment", "")
        try:
            saved = s.record(a, item_id, sides, comment)
        except ValueError as e:
            return item_page(s, a, token, error=str(e), status=400, picked=sides, comment=comment[:2000])
        return RedirectResponse(f"/s/{token}?notice={'saved' if saved else 'duplicate'}", status_code=303)

    def admin(token: str) -> Study:
        s = study()
        if not s.is_admin(token):
            raise HTTPException(404)
        return s

    @app.get("/a/{token}", response_class=HTMLResponse)
    def admin_page(token: str) -> HTMLResponse:
        s = admin(token)
        summary = summarise(s)
        return state.render("admin.j2", title="Study results", s=summary, token=token)

    @app.get("/a/{token}/export.json")
    def export_json_route(token: str) -> JSONResponse:
        headers = {"content-disposition": "attachment; filename=study.json"}
        return JSONResponse(export_json(admin(token)), headers=headers)

    @app.get("/a/{token}/export.csv")
    def export_csv_route(token: str) -> Response:
        return Response(
            export_csv(admin(token)),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": "attachment; filename=study.csv"},
        )
