"""``patchscope report``: the site's files and data, checked against the other commands'
documents and objdump, without a browser (tests/test_report_browser.py drives one)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from report_site import data, function_record
from test_cli import one_error_line, run

from conftest import BIN, ROOT

X86 = BIN / "x86_64/corpus"
HOSTILE = BIN / "x86_64-hostile/corpus"
ASSETS = ROOT / "python/patchscope/report/site/assets"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "site"
    probes = out.parent / "points.txt"
    probes.write_text('kernel.function("check_flags")\nkprobe:hot_sum\nkprobe:no_such_function\n')
    r = run("report", X86, "-o", out, "--probes", probes)
    assert r.returncode == 0, r.stderr
    return out


def test_site_is_whole_and_offline(site: Path) -> None:
    for page in ("index.html", "functions.html", "function.html", "probes.html", "site.js", "site.css"):
        assert (site / page).is_file()
    assert sorted(p.name for p in (site / "figures").iterdir()) == [
        "bands.svg",
        "calls.svg",
        "inline-args.svg",
        "versions.svg",
    ]
    assert not (site / "diff.html").exists()  # no --old
    for asset in ASSETS.iterdir():
        if asset.name == "diff.html":
            continue
        # nothing fetched from the network: every src and href is a file of the site
        for ref in re.findall(r'(?:src|href)="([^"]*)"', asset.read_text()):
            assert (site / ref).is_file(), (asset.name, ref)
        assert "http://" not in asset.read_text() and "https://" not in asset.read_text()


def test_table_is_scan(site: Path) -> None:
    """Every row of the functions table has the band and codes ``scan`` gives it."""
    table = data(site / "data/functions.js")
    scan = json.loads(run("scan", X86, "--format", "json").stdout)
    assert len(table["name"]) == scan["summary"]["functions"]
    rows = {
        (
            table["name"][i],
            table["files"][table["file"][i]] or None,
            table["bands"][table["band"][i]],
            tuple(table["codes"][c] for c in table["code"][i]),
        )
        for i in range(len(table["name"]))
    }
    assert rows == {(f["name"], f["decl_file"], f["band"], tuple(f["codes"])) for f in scan["functions"]}


def test_function_record_is_function_and_disassembly_is_objdump(site: Path) -> None:
    rec = function_record(site, "check_flags")
    doc = json.loads(run("function", X86, "check_flags", "--format", "json").stdout)["functions"][0]
    assert {k: v for k, v in rec.items() if k != "instances"} == {k: v for k, v in doc.items() if k != "instances"}
    assert "constprop-trivial-body" in [f["code"] for f in rec["findings"]]
    (inst,) = rec["instances"]
    assert {k: v for k, v in inst.items() if k != "code"} == doc["instances"][0]
    (code,) = inst["code"]
    low = int(code["low"], 16)
    sizes = [int(c, 16) for c in code["sizes"]]
    assert low == int(inst["entry_pc"], 16) and sum(sizes) == inst["size"]
    dump = subprocess.run(
        ["objdump", "-d", f"--start-address={low:#x}", f"--stop-address={low + sum(sizes):#x}", X86],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    starts = [int(m, 16) for m in re.findall(r"^\s+([0-9a-f]+):\t", dump, re.M)]
    assert starts == [low + sum(sizes[:i]) for i in range(len(sizes))]
    assert code["text"].split("\n")[-1] == "ret" and hex(starts[-1]) in inst["returns"]


def test_probes_and_diff_pages(site: Path, tmp_path: Path) -> None:
    probes = data(site / "data/probes.js")
    assert [p["probe"] for p in probes["points"]][1:] == ["kprobe:hot_sum", "kprobe:no_such_function"]
    assert probes["points"][2]["verdict"] == "unresolved"
    old, new = BIN / "diff/x86_64/old/corpus", BIN / "diff/x86_64/new/corpus"
    r = run("report", new, "--old", old, "-o", tmp_path / "site", "--no-figures")
    assert r.returncode == 0, r.stderr
    diff = data(tmp_path / "site/data/diff.js")
    cli = json.loads(run("diff", old, new, "--format", "json").stdout)
    assert [f["name"] for f in diff["functions"]] == [f["name"] for f in cli["functions"]]
    shown = [f for f in diff["functions"] if "code" in f]
    assert shown and all(f["code"]["old"] != f["code"]["new"] for f in shown)


def test_hostile_names_stay_data(tmp_path: Path) -> None:
    """The names are in the data as the binary spells them; the pages put text into the DOM
    only through textContent (the browser test runs them)."""
    r = run("report", HOSTILE, "-o", tmp_path / "site", "--no-figures")
    assert r.returncode == 0, r.stderr
    names = data(tmp_path / "site/data/functions.js")["name"]
    assert {"<img src=x onerror=alert(1)>", "<script>alert(2)</script>"} <= set(names)
    assert "</script>" not in (tmp_path / "site/data/functions.js").read_text()
    assert not re.search(
        r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write", (ASSETS / "site.js").read_text()
    )


def test_replaces_a_report_never_other_files(tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert run("report", HOSTILE, "-o", out, "--no-figures").returncode == 0
    (out / "stale").write_text("x")
    assert run("report", HOSTILE, "-o", out, "--no-figures").returncode == 0
    assert not (out / "stale").exists() and (out / "index.html").is_file()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    r = run("report", HOSTILE, "-o", other)
    assert r.returncode == 2 and (other / "notes.txt").read_text() == "keep"
    one_error_line(r, "not a patchscope report")
    one_error_line(run("report", HOSTILE), "-o DIR")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
