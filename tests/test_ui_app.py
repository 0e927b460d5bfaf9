"""`socialsim ui` routes through the ASGI test client: browsing, filters, escaping, the study flow,
CSRF, double submits, size limits, tokens."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("krippendorff")
from fastapi.testclient import TestClient  # noqa: E402

from socialsim.schema import Dialogue, Turn, write_jsonl  # noqa: E402
from socialsim.ui.app import create_app  # noqa: E402
from socialsim.ui.index import CorpusIndex  # noqa: E402
from socialsim.ui.study import Study, create_study, hash_token  # noqa: E402
from ui_helpers import HOSTILE, make_dialogue, write_run  # noqa: E402


@pytest.fixture
def run_dir(tmp_path):
    ds = [make_dialogue(i) for i in range(12)]
    ds.append(make_dialogue(12, risk="suicide", text_extra="zebracorn"))
    ds.append(make_dialogue(13, status="failed"))
    return write_run(tmp_path / "run", ds)


def _client(sources, study=None, **kw):
    return TestClient(create_app([CorpusIndex.open(s) for s in sources], study, **kw))


def test_list_filters_and_paging(run_dir):
    c = _client([run_dir])
    home = c.get("/")
    assert home.status_code == 200 and "run" in home.text and ">14<" in home.text
    r = c.get("/c/0")
    assert r.status_code == 200
    assert r.text.count("/c/0/d/") == 14
    assert "page 1 of 1" in r.text
    assert c.get("/c/0", params={"problem": "grief"}).text.count("/c/0/d/") == 3  # i = 3, 8, 13
    assert c.get("/c/0", params={"risk": "flagged"}).text.count("/c/0/d/") == 1
    assert c.get("/c/0", params={"status": "failed"}).text.count("/c/0/d/") == 1
    assert c.get("/c/0", params={"end_reason": "seeker_goodbye"}).text.count("/c/0/d/") == 7  # even i
    assert c.get("/c/0", params={"q": "zebracorn"}).text.count("/c/0/d/") == 1
    assert c.get("/c/0", params={"q": 'no"such AND word'}).text.count("/c/0/d/") == 0  # quotes are safe in FTS
    # strategy: supporter turns of dialogue i use strategies i % 8 and (i + 3) % 8 (risky one: only the second)
    q = c.get("/c/0", params={"strategy": "Question"}).text.count("/c/0/d/")
    assert q == sum(1 for i in range(14) if 0 in ((i % 8) if i != 12 else -1, (i + 3) % 8))
    assert c.get("/c/0", params={"strategy": "not a strategy"}).text.count("/c/0/d/") == 0
    assert c.get("/c/5").status_code == 404


def test_dialogue_page_shows_persona_layers_thoughts_risk_usage(run_dir):
    c = _client([run_dir])
    rows = re.findall(r"/c/0/d/(\d+)", c.get("/c/0", params={"risk": "flagged"}).text)
    risky = c.get(f"/c/0/d/{rows[0]}").text
    assert "risk: suicide" in risky and "protocol:suicide" in risky
    page = c.get("/c/0/d/1")
    assert page.status_code == 200
    t = page.text
    assert "Maya" in t and "surface" in t and "context" in t and "core" in t  # persona + layers
    assert "layer 0: surface" in t and "layer 1: context" in t
    assert '<details class="thought">' in t and "cause 0" in t and "to be heard" in t
    assert "100 + 20 tokens" in t  # per-turn usage
    assert "prompt +" in t and "completion tokens" in t
    assert c.get("/c/0/d/999").status_code == 404


def test_hostile_dialogue_renders_as_text(tmp_path):
    d = Dialogue(
        id=HOSTILE, persona_id="x", backend=HOSTILE, model="m", seed=0,
        turns=[Turn(speaker="seeker", text=HOSTILE), Turn(speaker="supporter", text="</textarea>" + HOSTILE)],
    )  # fmt: skip
    path = tmp_path / "hostile.jsonl"
    write_jsonl([d], path)
    c = _client([path])
    for url in ("/c/0", "/c/0/d/1", "/c/0?q=" + "%3Cscript%3E"):
        r = c.get(url)
        assert r.status_code == 200
        assert "<script>" not in r.text and "<img src=x" not in r.text, url
    page = c.get("/c/0/d/1").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none': no script at all
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_esconv_files_and_missing_path(tmp_path):
    from conftest import ESCONV_DIR
    from socialsim.errors import UserError

    c = _client([ESCONV_DIR / "FailedESConv.json", ESCONV_DIR / "devWithStrategy_short.tsv"])
    home = c.get("/").text
    assert "esconv-json" in home and "esconv-tsv" in home
    r = c.get("/c/0", params={"problem": "job crisis"})
    assert r.status_code == 200 and "/c/0/d/" in r.text
    row = re.search(r"/c/0/d/(\d+)", r.text).group(1)
    assert "Situation" in c.get(f"/c/0/d/{row}").text
    with pytest.raises(UserError, match="no such file"):
        CorpusIndex.open(tmp_path / "nope.jsonl")


def _study(tmp_path, run_dir, annotators=("ann", "bo"), n=4):
    other = write_run(tmp_path / "other", [make_dialogue(i) for i in range(14)])
    made = create_study(run_dir, other, tmp_path / "s.sqlite", n=n, annotators=list(annotators), seed=3)
    return made, Study.open(made.path)


def _answer(c, token, sides, comment="", item=None, csrf=None, headers=None):
    page = c.get(f"/s/{token}").text
    item = item if item is not None else int(re.search(r'name="item" value="(\d+)"', page).group(1))
    csrf = csrf if csrf is not None else re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    form = {"csrf": csrf, "item": item, "comment": comment, **{f"dim_{d}": v for d, v in sides.items()}}
    return c.post(f"/s/{token}/answer", data=form, headers=headers or {}, follow_redirects=False), item, csrf


def test_study_flow_double_submit_csrf_and_results(tmp_path, run_dir):
    made, study = _study(tmp_path, run_dir)
    assert made.items == 4 and made.match == "persona"
    raw = (tmp_path / "s.sqlite").read_bytes()
    for tok in [*made.tokens.values(), made.admin_token]:
        assert tok.encode() not in raw and hash_token(tok).encode() in raw
    c = _client([], study)
    ann = made.tokens["ann"]
    page = c.get(f"/s/{ann}")
    assert page.status_code == 200 and "0 of 4 answered" in page.text
    assert "Left" in page.text and "Right" in page.text
    for word in ("smollm2", "Question", "thought", "d0000"):  # blind: no model, strategy, thought or id
        assert word not in page.text.replace("question", "")
    dims = study.dimensions
    r, item, csrf = _answer(c, ann, {d: "left" for d in dims}, comment="clear <b>win</b>")
    assert r.status_code == 303 and r.headers["location"] == f"/s/{ann}?notice=saved"
    assert "1 of 4 answered" in c.get(f"/s/{ann}").text
    # the same form posted again (a second tab): refused, first answer kept
    again, _, _ = _answer(c, ann, {d: "right" for d in dims}, item=item, csrf=csrf)
    assert again.headers["location"].endswith("notice=duplicate")
    assert "already answered" in c.get(again.headers["location"]).text
    rows = study.all_answers()
    assert len(rows) == 1 and rows[0]["comment"] == "clear <b>win</b>"
    left_is_a = study.item(item).left_is_a
    assert set(rows[0]["choices"].values()) == {"a" if left_is_a else "b"}
    # CSRF: wrong token, cross-site origin, missing choice, unknown item, oversized body
    bad, _, _ = _answer(c, ann, {d: "tie" for d in dims}, csrf="0" * 64)
    assert bad.status_code == 403
    cross, _, _ = _answer(c, ann, {d: "tie" for d in dims}, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    site, _, _ = _answer(c, ann, {d: "tie" for d in dims}, headers={"sec-fetch-site": "cross-site"})
    assert site.status_code == 403
    partial, _, _ = _answer(c, ann, {dims[0]: "tie"})
    assert partial.status_code == 400 and "choose left, tie or right" in partial.text
    assert "Left is better" in partial.text
    nope, _, _ = _answer(c, ann, {d: "tie" for d in dims}, item=999)
    assert nope.status_code == 400
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    big = c.post(f"/s/{ann}/answer", content=b"x" * 70_000, headers=form_type)
    assert big.status_code == 413
    assert c.post(f"/s/{ann}/answer", content=b"{}", headers={"content-type": "application/json"}).status_code == 400
    assert len(study.all_answers()) == 1
    # wrong tokens: plain 404, the admin token is not an annotator token and vice versa
    assert c.get("/s/wrong").status_code == 404
    assert c.get(f"/s/{made.admin_token}").status_code == 404
    assert c.get(f"/a/{ann}").status_code == 404
    # finish both annotators; bo disagrees on one dimension
    for _ in range(3):
        assert _answer(c, ann, {d: "left" for d in dims})[0].status_code == 303
    assert "All 4 items are answered" in c.get(f"/s/{ann}").text
    bo = {d: ("tie" if d == "fluency" else "left") for d in dims}
    for _ in range(4):
        assert _answer(c, made.tokens["bo"], bo)[0].status_code == 303
    admin = c.get(f"/a/{made.admin_token}")
    assert admin.status_code == 200 and "4 / 4" in admin.text and "Krippendorff" in admin.text
    data = c.get(f"/a/{made.admin_token}/export.json").json()
    assert data["answers"] == 8 and data["agreement"]["items_with_2plus"] == 4
    assert len(data["answer_rows"]) == 8
    text = c.get(f"/a/{made.admin_token}/export.csv").text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 8 and set(table[0]) >= {"item", "annotator", "left", *dims, "comment"}
    json.dumps(data)


def test_headers_hosts_and_browse_off(tmp_path, run_dir):
    made, study = _study(tmp_path, run_dir)
    c = _client([run_dir], study, browse=False)
    assert c.get("/").status_code == 404 and c.get("/c/0").status_code == 404
    assert c.get(f"/s/{made.tokens['ann']}").status_code == 200
    r = c.get(f"/s/{made.tokens['ann']}")
    assert r.headers["referrer-policy"] == "same-origin" and r.headers["x-frame-options"] == "DENY"
    guarded = TestClient(create_app([], study, allowed_hosts=["127.0.0.1"]))
    assert guarded.get("/health").status_code == 400  # Host: testserver is not allowed (DNS rebinding)
    ok = TestClient(create_app([], study, allowed_hosts=["127.0.0.1"]), base_url="http://127.0.0.1:8765")
    assert ok.get("/health").status_code == 200


def test_index_follows_a_growing_run(tmp_path, monkeypatch):
    import socialsim.ui.index as index_mod
    from socialsim.simulate.store import RunStore

    monkeypatch.setattr(index_mod, "REFRESH_EVERY_S", 0.0)
    root = write_run(tmp_path / "live", [make_dialogue(i) for i in range(3)])
    c = _client([root])
    assert c.get("/c/0").text.count("/c/0/d/") == 3
    store = RunStore.open(root)
    store.commit(7, make_dialogue(7))
    store.close()
    assert c.get("/c/0").text.count("/c/0/d/") == 4
    # the UI opened the store read-only: nothing in it changed
    con = sqlite3.connect(root / "run.sqlite")
    assert con.execute("SELECT count(*) FROM dialogues").fetchone()[0] == 4
    con.close()


def test_broken_store_row_is_one_line_error(tmp_path):
    from conftest import one_line_error, run_cli

    root = write_run(tmp_path / "r", [make_dialogue(0)])
    con = sqlite3.connect(root / "run.sqlite")
    con.execute("INSERT INTO dialogues VALUES (5,'x','p','ok',1,0,0,'{\"id\": 1}','')")
    con.commit()
    con.close()
    one_line_error(run_cli("ui", root, "--port", "0", timeout=120), "run.sqlite (dialogue idx 5)", "field 'id'")


def test_streamed_oversized_body_is_refused(tmp_path, run_dir):
    made, study = _study(tmp_path, run_dir)
    c = _client([], study)

    def chunks():  # no Content-Length: the limit is enforced while the body is read
        for _ in range(40):
            yield b"comment=" + b"x" * 4096

    r = c.post(f"/s/{made.tokens['ann']}/answer", content=chunks(),
               headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 413
    assert study.all_answers() == []


def test_a_format_added_to_the_readers_shows_up(tmp_path):
    from conftest import ROOT

    c = _client([ROOT / "tests" / "data" / "ssconv_sample.json"])  # SSConv: detected by the corpus readers
    assert "ssconv" in c.get("/").text
    assert c.get("/c/0").text.count("/c/0/d/") == 2
    assert c.get("/c/0/d/1").status_code == 200
