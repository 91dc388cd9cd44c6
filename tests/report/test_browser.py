"""report.html in a real headless Chromium: it renders, every figure decodes, and it requests nothing outside."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import ptst.report
from tests.report.cdp import Browser, find_browser
from tests.report.fakerun import flags, write_cell

pytestmark = pytest.mark.slow
V, L = "chat:vanilla", "chat:llama"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium found (apt-get install chromium-headless-shell)")
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
    browser = Browser(binary, root / "profile")
    try:
        browser.call("Network.enable", page=True)
        browser.call("Page.enable", page=True)
        browser.call("Page.navigate", {"url": (run / "report.html").as_uri()}, page=True)
        browser.wait_for("Page.loadEventFired")
        yield browser, run
    finally:
        browser.close()


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
