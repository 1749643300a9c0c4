"""Benchmark: ``patchscope report`` of a whole vmlinux with a warm index — once computing every
rule, once with the findings cached — beside ``patchscope scan --format json`` of the same
binary (the same spectrum as one JSON document, no pages, no disassembly); the site's size on
disk; then, in Debian's headless Chromium (Selenium), the first paint of the overview and of
the functions table, and a search of the 74,000 functions, timed by the page with
``performance.now()``.

    python bench/report.py [VMLINUX] [--cache DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import python, run, table, vmlinux

INDEX = "import patchscope; b = patchscope.open({path!r}); b.inventory"
SEARCHES = ("preallocate_pmds", "tcp_", "x")


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def browser_figures(site: Path) -> list[tuple[str, str]]:
    from selenium import webdriver
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(a)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    out = []
    try:
        for page in ("index.html", "functions.html"):
            driver.get(f"{site.as_uri()}/{page}")
            paint = WebDriverWait(driver, 60).until(lambda d: _paint(d))
            out.append((f"first contentful paint, {page}", f"{paint:.0f} ms"))
        for q in SEARCHES:
            ms = driver.execute_script(
                "document.getElementById('search').value = arguments[0]; PS.refilter(); return PS.timing.search", q
            )
            shown = driver.find_element("id", "count").text
            out.append((f"search {q!r} ({shown})", f"{ms:.1f} ms"))
    finally:
        driver.quit()
    return out


def _paint(driver: Any) -> float | None:
    entries = driver.execute_script(
        "return performance.getEntriesByType('paint').filter(e => e.name === 'first-contentful-paint')"
        ".map(e => e.startTime)"
    )
    return entries[0] if entries else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?", type=Path)
    ap.add_argument("--cache", type=Path, help="an index cache to use (default: a new one, indexed first)")
    args = ap.parse_args()
    path = args.vmlinux or vmlinux()
    work = Path(tempfile.mkdtemp(prefix="patchscope-bench-"))
    cache = args.cache or work / "cache"
    env = {"PATCHSCOPE_CACHE": str(cache)}
    site = work / "site"
    report = [sys.executable, "-m", "patchscope.cli.main", "report", str(path), "-o", str(site)]
    scan = [sys.executable, "-m", "patchscope.cli.main", "scan", str(path), "--format", "json", "-o", "/dev/null"]
    try:
        python(INDEX.format(path=str(path)), env, "index")
        label = "patchscope report, warm index, rules run" if not args.cache else "patchscope report"
        runs = [run(label, report, env), run("patchscope report, findings cached", report, env)]
        peer = run("patchscope scan --format json, findings cached", scan, env)
        mb = size_mb(site)
        rows = [("", "seconds", "CPU seconds", "peak RSS MB", "vs scan --format json")]
        for r in [*runs, peer]:
            ratio = f"{r.seconds / peer.seconds:.1f} x"
            rows.append((r.label, f"{r.seconds:.1f}", f"{r.cpu_seconds:.1f}", f"{r.max_rss_mb:.0f}", ratio))
        print(table(rows))
        print(f"site: {mb:.1f} MB in {sum(1 for _ in site.rglob('*'))} files")
        if shutil.which("chromium") and shutil.which("chromedriver"):
            print(table([("in headless Chromium", ""), *browser_figures(site)]))
        else:
            print("no chromium/chromedriver: browser figures skipped")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
