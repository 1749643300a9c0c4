"""``patchscope report`` in a real browser: Debian's headless Chromium driven by Selenium
through chromedriver, the site opened from ``file://``. Skipped where either is missing
(``scripts/install --test`` installs both)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import BIN, vmlinux_path

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromium-driver")

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(a)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


def build(out: Path, binary: Path, *more: str) -> Path:
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "report", str(binary), "-o", str(out), *more],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("site") / "x86_64", BIN / "x86_64/corpus")


def open_page(browser: Any, url: str, ready: str = "#app > :not(#loading)") -> None:
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))


def errors(browser: Any) -> list[dict[str, Any]]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def no_alert(browser: Any) -> bool:
    try:
        browser.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return True
    return False


def test_overview_loads_clean(browser: Any, site: Path) -> None:
    open_page(browser, site.as_uri() + "/index.html")
    assert errors(browser) == []
    text = browser.find_element(By.ID, "app").text
    assert "The safety spectrum" in text and "constprop-trivial-body" in text
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure img")) == 4
    # every figure decoded: a broken image has no natural width
    assert all(
        browser.execute_script("return arguments[0].naturalWidth", i) > 0
        for i in browser.find_elements(By.CSS_SELECTOR, "figure img")
    )


def search_and_open(browser: Any, site: Path, name: str, code: str) -> None:
    open_page(browser, site.as_uri() + "/functions.html", ".tbody .trow")
    browser.execute_script("PS.timing.search = undefined")
    browser.find_element(By.ID, "search").send_keys(name)
    # the table filters once typing pauses, and says how long it took
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return PS.timing.search !== undefined"))
    (link,) = [a for a in browser.find_elements(By.CSS_SELECTOR, ".tbody .c-name a") if a.text == name]
    row = link.find_element(By.XPATH, "./ancestor::div[contains(@class, 'trow')]")
    assert code in row.find_element(By.CSS_SELECTOR, ".c-code").text
    link.click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".disasm .insn"))
    assert errors(browser) == []


def test_search_click_and_marks(browser: Any, site: Path) -> None:
    search_and_open(browser, site, "check_flags", "constprop-trivial-body")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text.startswith("check_flags")
    ret = browser.find_element(By.CSS_SELECTOR, ".insn.m-return")
    assert ret.find_element(By.CSS_SELECTOR, ".text").text == "ret"
    assert "return" in ret.find_element(By.CSS_SELECTOR, ".marks").text
    entry = browser.find_element(By.CSS_SELECTOR, ".insn.m-entry")
    assert "constprop-trivial-body" in entry.text


def test_deep_link_and_keyboard(browser: Any, site: Path) -> None:
    open_page(browser, site.as_uri() + "/function.html#f=hot_sum", ".disasm")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text.startswith("hot_sum")
    assert errors(browser) == []
    # a link from the overview's code table lands on the table filtered by that code
    open_page(browser, site.as_uri() + "/functions.html#code=cold-split", ".tbody .trow")
    rows = browser.find_elements(By.CSS_SELECTOR, ".tbody .trow")
    assert rows and all("cold-split" in r.find_element(By.CSS_SELECTOR, ".c-code").text for r in rows)
    # keyboard: / focuses the search, arrows move, Enter opens
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_DOWN)
    chosen = browser.find_element(By.CSS_SELECTOR, ".trow.sel .c-name a").text
    body.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "h1 code"))
    assert browser.find_element(By.CSS_SELECTOR, "h1 code").text == chosen


def test_hostile_names_run_no_script(browser: Any, tmp_path: Path) -> None:
    site = build(tmp_path / "hostile", BIN / "x86_64-hostile/corpus", "--no-figures")
    names = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>"]
    open_page(browser, site.as_uri() + "/functions.html#q=%3C", ".tbody .trow")
    shown = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".tbody .c-name a")]
    assert sorted(shown) == sorted(names)
    assert browser.find_elements(By.CSS_SELECTOR, "img[src=x], .tbody script") == []
    for link in range(2):
        browser.find_elements(By.CSS_SELECTOR, ".tbody .c-name a")[link].click()
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".disasm"))
        assert browser.find_element(By.CSS_SELECTOR, "h1 code").text in names
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
        time.sleep(0.3)  # an onerror would have fired by now
        assert no_alert(browser)
        browser.back()
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tbody .trow"))
    assert errors(browser) == []


VMLINUX = vmlinux_path()


@pytest.mark.skipif(VMLINUX is None, reason="needs the Debian 6.1.0-56 vmlinux")
def test_vmlinux_preallocate_pmds(browser: Any, tmp_path: Path) -> None:
    site = build(tmp_path / "vmlinux", VMLINUX, "--no-figures")
    search_and_open(browser, site, "preallocate_pmds", "constprop-trivial-body")
    (ret,) = browser.find_elements(By.CSS_SELECTOR, ".insn.m-return")
    assert "__x86_return_thunk" in ret.text or "jmp" in ret.text
    assert "ftrace" in browser.find_element(By.CSS_SELECTOR, ".insn.m-entry").text


def test_probes_and_diff_pages(browser: Any, tmp_path: Path) -> None:
    points = tmp_path / "points.txt"
    points.write_text('kernel.function("check_flags")\nkprobe:no_such_function\n')
    old, new = BIN / "diff/x86_64/old/corpus", BIN / "diff/x86_64/new/corpus"
    site = build(tmp_path / "diff", new, "--old", str(old), "--probes", str(points), "--no-figures")
    open_page(browser, site.as_uri() + "/probes.html", ".point")
    points_shown = browser.find_elements(By.CSS_SELECTOR, ".point")
    badges = [p.find_element(By.CSS_SELECTOR, "h3 .band").text for p in points_shown]
    assert len(badges) == 2 and badges[1] == "unresolved"
    open_page(browser, site.as_uri() + "/diff.html", "table.grid")
    changed = browser.find_elements(By.CSS_SELECTOR, "table.grid tbody tr")
    assert changed and browser.find_elements(By.CSS_SELECTOR, "details .side pre")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")] == [
        "Overview",
        "Functions",
        "Probes",
        "Diff",
    ]
    assert errors(browser) == []
