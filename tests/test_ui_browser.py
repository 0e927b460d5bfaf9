"""`socialsim ui` in real headless Chromium (Debian's chromium + chromium-driver, via selenium): the
corpus list, a dialogue, a blind study answered in the browser (kept over a reload and a new
browser, a second tab cannot answer twice), a second annotator, the admin results. Screenshots go
to the test's folder (and to $SOCIALSIM_UI_SHOTS when set)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and DRIVER.is_file()), reason="apt-get install chromium chromium-driver"
)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from socialsim.ui.study import create_study  # noqa: E402
from ui_helpers import HOSTILE, UIProcess, make_dialogue, write_run  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1400"]  # fmt: skip


class Browser:
    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-ui-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for f in [*FLAGS, f"--user-data-dir={self.profile}"]:
            opts.add_argument(f)
        self.d = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
        self.d.set_page_load_timeout(60)

    def close(self) -> None:
        try:
            self.d.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def _shot(b: Browser, path: Path) -> Path:
    b.d.save_screenshot(str(path))
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    assert w >= 1000 and h >= 800 and path.stat().st_size > 20_000, (w, h, path.stat().st_size)
    if os.environ.get("SOCIALSIM_UI_SHOTS"):
        out = Path(os.environ["SOCIALSIM_UI_SHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return path


def _detached(button):
    """A wait condition: true once `button`'s document has been replaced. Chromium reports a node
    of a replaced document either as stale or, right after a tab switch, as an inspector error
    ("Node with given id does not belong to the document"); both mean the old page is gone."""

    def gone(_driver) -> bool:
        try:
            button.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in (e.msg or ""):
                return True
            raise
        return False

    return gone


def _submit(b: Browser) -> None:
    """Click the form's button and wait until the next page has replaced this one and loaded."""
    button = b.d.find_element(By.ID, "submit")
    button.click()
    WebDriverWait(b.d, 30).until(_detached(button))
    WebDriverWait(b.d, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _answer_in_browser(b: Browser, sides: dict[str, str], comment: str = "") -> None:
    for dim, side in sides.items():
        b.d.find_element(By.ID, f"dim_{dim}_{side}").click()
    if comment:
        b.d.find_element(By.NAME, "comment").send_keys(comment)
    _submit(b)


def _answer_over_http(url: str, token: str, sides: dict[str, str]) -> None:
    page = urllib.request.urlopen(f"{url}/s/{token}", timeout=30).read().decode()
    item = re.search(r'name="item" value="(\d+)"', page).group(1)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    form = {"csrf": csrf, "item": item, **{f"dim_{d}": v for d, v in sides.items()}}
    req = urllib.request.Request(f"{url}/s/{token}/answer", data=urllib.parse.urlencode(form).encode(), method="POST")
    req.add_header("content-type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req, timeout=30) as r:  # follows the 303 to the next item
        assert r.status == 200


def test_browse_and_blind_study_in_chromium(tmp_path):
    a = [make_dialogue(i) for i in range(10)]
    a[2] = a[2].model_copy(update={"turns": [a[2].turns[0].model_copy(update={"text": HOSTILE}), *a[2].turns[1:]]})
    run_a = write_run(tmp_path / "base", a)
    run_b = write_run(tmp_path / "tuned", [make_dialogue(i + 100, persona_id=f"p-{i % 7}") for i in range(10)])
    made = create_study(run_a, run_b, tmp_path / "study.sqlite", n=4, annotators=["ann", "bo"], seed=1)
    dims = ["fluency", "identification", "comforting", "suggestion", "overall"]
    ui = UIProcess("--study", str(made.path), str(run_a), log_dir=tmp_path)
    b = Browser()
    try:
        # browse: the list, then a dialogue with its thought opened
        b.d.get(f"{ui.url}/c/0")
        assert "base" in b.d.title and len(b.d.find_elements(By.CSS_SELECTOR, "table.list tbody tr")) == 10
        _shot(b, tmp_path / "ui-list.png")
        b.d.get(f"{ui.url}/c/0/d/3")
        assert b.d.find_elements(By.CSS_SELECTOR, "script") == []
        assert HOSTILE in b.d.find_element(By.CSS_SELECTOR, ".turn.seeker .text").text  # shown as text
        b.d.find_element(By.CSS_SELECTOR, "details.thought summary").click()
        assert b.d.find_element(By.CSS_SELECTOR, "details.thought").get_attribute("open") is not None
        _shot(b, tmp_path / "ui-dialogue.png")
        # the study: three answers, the first with a comment
        link = f"{ui.url}/s/{made.tokens['ann']}"
        b.d.get(link)
        assert b.d.find_element(By.ID, "progress-text").text == "0 of 4 answered"
        plan = [{d: "left" for d in dims}, {d: ("tie" if d == "fluency" else "right") for d in dims},
                {d: "left" for d in dims}, {d: "right" for d in dims}]  # fmt: skip
        for dim, side in plan[0].items():
            b.d.find_element(By.ID, f"dim_{dim}_{side}").click()
        _shot(b, tmp_path / "ui-study-item.png")
        _submit(b)
        assert "Answer saved" in b.d.find_element(By.ID, "notice").text
        for sides in plan[1:3]:
            _answer_in_browser(b, sides, comment="both kind, right asks more")
        assert b.d.find_element(By.ID, "progress-text").text == "3 of 4 answered"
        b.d.refresh()
        assert b.d.find_element(By.ID, "progress-text").text == "3 of 4 answered"
        # a second tab on the same item: the first submit wins, the second is refused
        first_tab = b.d.current_window_handle
        b.d.switch_to.new_window("tab")
        b.d.get(link)
        _answer_in_browser(b, plan[3])
        assert "All 4 items are answered" in b.d.find_element(By.ID, "finished").text
        b.d.switch_to.window(first_tab)
        _answer_in_browser(b, {d: "tie" for d in dims})
        assert "already answered" in b.d.find_element(By.ID, "notice").text
    finally:
        b.close()
    b = Browser()  # a new browser (fresh profile): nothing was lost
    try:
        b.d.get(link)
        assert "All 4 items are answered" in b.d.find_element(By.ID, "finished").text
        # the second annotator answers over plain HTTP: agrees on two items, differs on the others
        for j in range(4):
            _answer_over_http(ui.url, made.tokens["bo"], plan[j] if j in (0, 2) else {d: "tie" for d in dims})
        b.d.get(f"{ui.url}/a/{made.admin_token}")
        progress = b.d.find_element(By.ID, "progress").text
        assert "ann 4 / 4" in progress and "bo 4 / 4" in progress
        results = b.d.find_element(By.ID, "results").text
        assert "overall" in results and "fluency" in results
        alpha = b.d.find_element(By.ID, "alpha-pooled").text
        _shot(b, tmp_path / "ui-results.png")
    finally:
        b.close()
        ui.close()
    assert re.fullmatch(r"-?\d\.\d{3}", alpha), alpha
    print(f"\nKrippendorff's alpha (ordinal, pooled over 5 dimensions, 4 items x 2 annotators): {alpha}")
    assert made.tokens["ann"] not in ui.stderr_path.read_text()  # tokens never logged
