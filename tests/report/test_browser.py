"""report.html in a real headless Chromium: it renders, every figure decodes, and it requests nothing outside."""

from __future__ import annotations

import base64
import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import ptst.report
from ptst.report.frontier import HEADING
from ptst.report.tidy import COLUMNS
from tests.report.cdp import Browser, find_browser
from tests.report.fakerun import flags, write_cell
from tests.report.test_frontier import _cell, _path

pytestmark = pytest.mark.slow
V, L = "chat:vanilla", "chat:llama"
INOC, MIXED = "chat:inoculation-tan", "chat:llama + safety"


def _binary() -> str:
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium found (apt-get install chromium-headless-shell)")
    return binary


@contextmanager
def _opened(binary: str, root: Path, run: Path) -> Iterator[Browser]:
    """report.html of `run` loaded in a fresh headless Chromium (profile under `root`), every event recorded."""
    browser = Browser(binary, root / "profile")
    try:
        browser.call("Network.enable", page=True)
        browser.call("Page.enable", page=True)
        browser.call("Page.navigate", {"url": (run / "report.html").as_uri()}, page=True)
        browser.wait_for("Page.loadEventFired")
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    binary = _binary()
    root = tmp_path_factory.mktemp("browser")
    run = root / "run"
    for tr in (V, L):
        for te in (V, L):
            k = {(V, L): 2, (L, L): 9}.get((tr, te), 12)
            write_cell(run, tr, te, 0, safety={"advbench": flags(40, range(k))}, helpful={"gsm8k": (10, 40)},
                       over={"xstest": (5, 25)})
    for te in (V, L):
        write_cell(run, None, te, 0, safety={"advbench": flags(40, [3])}, helpful={"gsm8k": (4, 40)})
    ptst.report.run(run)
    with _opened(binary, root, run) as browser:
        yield browser, run


def test_renders_the_report(page):
    browser, _ = page
    assert browser.evaluate("document.title").startswith("ptst report")
    text = browser.evaluate("document.body.innerText")
    assert "Table 1" in text and "PTST" in text and "Provenance" in text
    assert browser.evaluate("document.querySelectorAll('table').length") >= 3
    # laid out: the page has real height and width, not a blank document
    assert browser.evaluate("document.body.scrollHeight") > 1000


def test_every_figure_loads(page):
    browser, run = page
    figs = browser.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(figs) == len(list(run.glob("fig-*.png"))) >= 3
    assert all(done and w > 100 and h > 100 for done, w, h in figs), figs


def test_no_request_leaves_the_file(page):
    browser, _ = page
    urls = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
    assert urls, "the navigation itself is a request"
    assert all(u.startswith(("file://", "data:")) for u in urls), urls


def test_screenshot_is_not_blank(page):
    browser, _ = page
    png = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, page=True)["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    Path(page[1] / "screenshot.png").write_bytes(png)


# ---- the whole story, shaped like configs/quickstart.yaml (seed 0): frontier, safety mixing, inoculation ----

@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every path under chat:llama at steps 4 and 8 and the final adapter (PTST, the same-template path, inoculation,
    the safety-mixing row), every final adapter under chat:vanilla too, inoculation's leak cell, and the run's
    grid.yaml naming quickstart's two report.compare pairs; the report written."""
    run = tmp_path_factory.mktemp("story") / "run"
    _cell(run, None, V, 20, 5)
    _cell(run, None, L, 2, 5)
    for train, points, mix in ((V, [(3, 10), (4, 20), (5, 30)], None), (L, [(10, 10), (20, 20), (30, 30)], None),
                               (INOC, [(6, 10), (9, 20), (12, 30)], None), (L, [(1, 10), (2, 20), (2, 30)], "safety")):
        _path(run, train, L, points, steps=(4, 8), mix=mix)
    for train, harmful, mix in ((V, 35, None), (L, 36, None), (INOC, 30, None), (L, 8, "safety")):
        _cell(run, train, V, harmful, 30, mix=mix)
    _cell(run, INOC, INOC, 25, 30)  # the leak cell: tested under the prompt it was trained with
    (run / "grid.yaml").write_text(f"report:\n  compare:\n    - ['{MIXED} -> {L}', '{V} -> {L}']\n"
                                   f"    - ['{INOC} -> {L}', '{V} -> {L}']\n", encoding="utf-8")
    ptst.report.run(run)
    return run


@pytest.fixture(scope="module")
def story_page(story: Path, tmp_path_factory: pytest.TempPathFactory):
    with _opened(_binary(), tmp_path_factory.mktemp("story-browser"), story) as browser:
        yield browser


TABLE1_ROWS = """(() => {
  const h = Array.from(document.querySelectorAll('h2')).find(e => e.innerText.startsWith('Table 1'));
  let e = h && h.nextElementSibling;
  while (e && !e.querySelector('table')) e = e.nextElementSibling;
  return e ? Array.from(e.querySelectorAll('tbody tr')).map(r => r.cells[0].innerText) : null;
})()"""


def test_the_story_renders_in_chromium(story, story_page):
    text = story_page.evaluate("document.body.innerText")
    assert HEADING == "At equal helpfulness: the frontier" and HEADING in text
    assert story_page.evaluate(TABLE1_ROWS) == ["no fine-tuning", V, L, MIXED, f"{INOC} (inoculation)"]
    lines = text.splitlines()
    ptst = "than PTST's (train chat:vanilla, test chat:llama)"
    assert any(s.startswith("At equal GSM8K accuracy (strict), safety mixing's (train chat:llama + safety, test "
                            "chat:llama) ") and ptst in s for s in lines), text
    assert any(s.startswith("At equal GSM8K accuracy (strict), inoculation with PTST's (train chat:inoculation-tan, "
                            "test chat:llama) ") and ptst in s for s in lines), text
    png = (story / "fig-frontier-advbench-keyword.png").read_bytes()
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    images = story_page.evaluate("Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])")
    assert [(done, w > 100) for s, done, w in images if s == src] == [(True, True)]


def test_the_story_is_in_results_csv(story):
    with (story / "results.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    metrics = {r["metric"] for r in rows}
    assert {"frontier.accuracy.strict", "frontier.keyword", "matched_diff.keyword"} <= metrics
    diffs = [r for r in rows if r["metric"] == "matched_diff.keyword"]
    mixing = next(r for r in diffs if r["train_template"] == MIXED)
    assert mixing["category"] == f"vs {V} → {L}" and mixing["test_template"] == L and mixing["value"]
    assert any(r["train_template"] == INOC and r["category"] == f"vs {V} → {L}" for r in diffs)
    mixed = {(r["test_template"], r["checkpoint"]) for r in rows if r["train_template"] == MIXED}
    assert {(V, ""), (L, "4"), (L, "8"), (L, "")} <= mixed
    inoc = {(r["test_template"], r["checkpoint"]) for r in rows if r["train_template"] == INOC}
    assert {(V, ""), (L, "4"), (L, "8"), (L, ""), (INOC, "")} <= inoc
