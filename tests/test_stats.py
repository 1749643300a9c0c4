"""``patchscope stats``: the experiments on the fixtures, against the oracle
(fixtures/expected/*.json, from readelf and llvm-dwarfdump) and numbers checked by hand with
llvm-dwarfdump; on Debian's kernels when present."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import patchscope
from conftest import BIN, expected, fixture_path, vmlinux_path
from patchscope.cli.main import main
from patchscope.report import stats

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("calls", "versions", "inline-args", "bands")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The two x86_64 builds of the corpus, -O2 and -O3, side by side."""
    return stats.document([patchscope.open(fixture_path(v)) for v in ("x86_64", "x86_64-O3")])


def of(doc: dict[str, Any], variant: str) -> dict[str, Any]:
    (rec,) = [r for r in doc["binaries"] if r["label"] == f"{variant}/corpus"]
    return rec


def oracle_statuses(variant: str) -> Counter:
    """Not / fully / selectively inlined from the oracle's counts (a name declared twice is two
    functions: the two static ``lookup``s)."""
    out: Counter = Counter()
    for f in expected(variant)["functions"].values():
        status = (
            "not-inlined"
            if f["inline_sites"] == 0
            else "fully-inlined"
            if f["out_of_line"] == 0
            else "selectively-inlined"
        )
        out[status] += len(f["decls"])
    return out


def oracle_clone_suffixes(variant: str) -> Counter:
    """readelf's function symbols by clone suffix, numbers dropped; ``.cold`` parts left out."""
    out: Counter = Counter()
    for s in expected(variant)["func_symbols"]:
        _, _, suffix = s["name"].partition(".")
        if suffix and not s["name"].endswith(".cold"):
            out[re.sub(r"\.?\d+", "", suffix).strip(".")] += 1
    return out


# -- 1. .call vs .inline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "counts"),
    [
        ("x86_64", {"not-inlined": 47, "fully-inlined": 9, "selectively-inlined": 4, "symbol-only": 7}),
        # -O3: drain is inlined everywhere instead of split into drain.part.0
        ("x86_64-O3", {"not-inlined": 47, "fully-inlined": 10, "selectively-inlined": 3, "symbol-only": 7}),
    ],
)
def test_functions_by_status(doc: dict[str, Any], variant: str, counts: dict[str, int]) -> None:
    calls = of(doc, variant)["calls"]
    assert calls["functions"] == counts
    assert {k: v for k, v in counts.items() if k != "symbol-only"} == oracle_statuses(variant)
    entries = sum(len(f["decls"]) for f in expected(variant)["functions"].values() if f["out_of_line"])
    assert calls["with_entry"] == entries
    assert calls["inlined"] == counts["fully-inlined"] + counts["selectively-inlined"]


def test_call_sites_x86_64(doc: dict[str, Any]) -> None:
    """Checked with llvm-dwarfdump: 90 DW_TAG_call_site, of which 2 have DW_AT_call_target
    (indirect) and 10 call libc (abort 5 times, exit twice, fprintf twice, printf once)."""
    calls = of(doc, "x86_64")["calls"]
    ex = expected("x86_64")["die_counts"]
    assert calls["call_sites"] == {
        "inline": ex["inlined_subroutine"],
        "dwarf_calls": ex["call_site"],
        "here": 78,
        "here_no_dwarf": 0,
        "elsewhere": 10,
        "indirect": 2,
    }
    assert (ex["inlined_subroutine"], ex["call_site"]) == (27, 90)
    assert calls["inlined_share_of_resolved"] == round(27 / (27 + 78), 4)
    assert calls["inlined_share_of_all"] == round(27 / (27 + 90), 4)
    # helper_both, drain and buf_process: as many inline sites as calls (2/2, 3/3, 3/3);
    # always inlined: the 9 fully inlined functions and op_double (address taken, never called)
    assert calls["called_functions_by_inlined_share"] == {"0 %": 45, "0-50 %": 0, "50-100 %": 3, "100 %": 10}
    assert calls["called_functions"] == 58


# -- 2. several versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "suffixes"),
    [
        ("x86_64", {"original": 41, "constprop": 4, "isra": 3, "part": 2, "constprop.isra": 1}),
        ("x86_64-O3", {"original": 41, "constprop": 5, "isra": 3, "part": 1, "constprop.isra": 1}),
    ],
)
def test_instances_by_suffix(doc: dict[str, Any], variant: str, suffixes: dict[str, int]) -> None:
    v = of(doc, variant)["versions"]
    assert v["instances_by_suffix"] == suffixes
    assert {k: n for k, n in suffixes.items() if k != "original"} == oracle_clone_suffixes(variant)
    assert sum(suffixes.values()) == sum(f["out_of_line"] for f in expected(variant)["functions"].values())


def test_version_shapes(doc: dict[str, Any]) -> None:
    o2, o3 = of(doc, "x86_64")["versions"], of(doc, "x86_64-O3")["versions"]
    counts = {k: s["functions"] for k, s in o2["shapes"].items()}
    # every clone of the -O2 build replaces its original; six functions have a .cold part
    assert counts == {"several-copies": 0, "original+clones": 0, "several-clones": 0, "one-clone": 10, "cold-part": 6}
    assert o2["shapes"]["cold-part"]["functions"] == sum(
        s["name"].endswith(".cold") for s in expected("x86_64")["func_symbols"]
    )
    # -O3 keeps scale_mixed beside its .constprop clone (fixtures/README.md)
    assert o3["shapes"]["original+clones"] == {
        "functions": 1,
        "examples": [
            {
                "name": "scale_mixed",
                "decl_file": "src/constprop.c",
                "versions": 2,
                "instances": ["scale_mixed", "scale_mixed.constprop.0"],
            }
        ],
    }
    assert o3["max_instances"] == 2 and o2["max_instances"] == 1
    assert o2["functions_with_several_versions"] == 6 and o3["functions_with_several_versions"] == 7
    drain = o2["shapes"]["one-clone"]["examples"] + o2["shapes"]["cold-part"]["examples"]
    assert {"name": "drain", "decl_file": "src/combo.c", "versions": 1, "instances": ["drain.part.0 +cold"]} in drain


# -- 3. arguments at inline sites -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "classes", "readable"),
    [
        # counted independently from llvm-dwarfdump's location lists at each site's entry pc
        ("x86_64", {"all": 10, "some": 1, "none": 13, "no-params": 3}, (16, 45)),
        ("x86_64-O3", {"all": 13, "some": 1, "none": 13, "no-params": 3}, (19, 48)),
    ],
)
def test_sites_by_class(doc: dict[str, Any], variant: str, classes: dict[str, int], readable: tuple) -> None:
    a = of(doc, variant)["inline_args"]
    assert a["sites_by_class"] == classes
    assert a["sites"] == sum(classes.values()) == expected(variant)["die_counts"]["inlined_subroutine"]
    assert (a["param_sites_readable"], a["param_sites"]) == readable
    assert sum(a["param_sites_by_location"].values()) == a["param_sites"]


def test_location_kinds_x86_64(doc: dict[str, Any]) -> None:
    """clampi's 18 (site, parameter) pairs are bound only by empty ranges [pc, pc) — a later
    location view — and __get_cpuid_count's four outputs are DW_OP_implicit_pointer (0xa0)."""
    kinds = of(doc, "x86_64")["inline_args"]["param_sites_by_location"]
    assert kinds[stats.VIEW_ONLY] == 23
    assert kinds["implicit pointer"] == 4
    assert stats.NO_DIE_AT_SITE not in kinds  # GCC writes a parameter DIE at every site
    assert sum(v for k, v in kinds.items() if k in stats.READABLE_KINDS) == 16


def test_per_parameter_at_known_sites(doc: dict[str, Any]) -> None:
    """mix32 (3 sites): x in RDI at the entry of one, bound only in a later view at another,
    no location at the third. clampi's parameters come in reverse order at each site."""
    worst = {w["name"]: w for w in of(doc, "x86_64")["inline_args"]["worst"]}
    assert worst["clampi"] == {
        "name": "clampi",
        "decl_file": "src/inline.c",
        "sites": 6,
        "all": 0,
        "some": 0,
        "none": 6,
        "readable": {"v": 0, "lo": 0, "hi": 0},
    }
    assert worst["mix32"]["readable"] == {"x": 1} and (worst["mix32"]["all"], worst["mix32"]["none"]) == (1, 2)
    assert worst["__get_cpuid_count"]["readable"] == {
        "__leaf": 1,
        "__subleaf": 1,
        "__eax": 0,
        "__ebx": 0,
        "__ecx": 0,
        "__edx": 0,
    }
    # the most sites missing a parameter first
    assert next(iter(worst)) == "clampi"


def test_functions_by_readable_share(doc: dict[str, Any]) -> None:
    a = of(doc, "x86_64")["inline_args"]
    # 0: clampi, sq, helper_both; 1/3: mix32, __get_cpuid_count; all: buf_process, drain,
    # op_double, _xabort, __get_cpuid_max
    assert a["functions_by_readable_share"] == {
        "0 %": 3,
        "0-25 %": 0,
        "25-50 %": 2,
        "50-75 %": 0,
        "75-100 %": 0,
        "100 %": 5,
    }
    # the rule that says the same per function agrees
    assert (
        a["functions"] - a["functions_all_readable_everywhere"]
        == of(doc, "x86_64")["bands"]["functions_by_code"]["inline-args-differ"]
    )


# -- bands ---------------------------------------------------------------------------------------


def test_bands_agree_with_inventory(doc: dict[str, Any]) -> None:
    for variant in ("x86_64", "x86_64-O3"):
        rec = of(doc, variant)
        b, calls = rec["bands"], rec["calls"]
        assert sum(b["functions_by_band"].values()) == calls["source_functions"] + calls["functions"]["symbol-only"]
        assert b["functions_by_code"]["fully-inlined"] == calls["functions"]["fully-inlined"]
        assert b["functions_by_code"]["cold-split"] == rec["versions"]["shapes"]["cold-part"]["functions"]
    assert of(doc, "x86_64")["bands"]["functions_by_band"] == {"safe": 30, "gray": 36, "hazardous": 1}


# -- the command ---------------------------------------------------------------------------------


def test_short_labels() -> None:
    assert stats.short_labels(["a/x86_64/corpus", "a/x86_64-O3/corpus"]) == ["x86_64/corpus", "x86_64-O3/corpus"]
    assert stats.short_labels(["/k/vmlinux-1", "/k/vmlinux-2"]) == ["vmlinux-1", "vmlinux-2"]
    assert stats.short_labels(["same", "same"]) == ["same #1", "same #2"]


def _run(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "stats.json"
    args = ["stats", str(BIN / "x86_64/corpus"), str(BIN / "x86_64-O3/corpus"), "--format", "json", "-o", str(out)]
    assert main([*args, *extra]) == 0
    return json.loads(out.read_text())


def test_json_and_png_plots(tmp_path: Path) -> None:
    d = _run(tmp_path, "--plots", str(tmp_path / "plots"))
    assert (d["schema"], d["version"]) == ("patchscope.stats", 1)
    assert [r["label"] for r in d["binaries"]] == ["x86_64/corpus", "x86_64-O3/corpus"]
    for r in d["binaries"]:
        assert set(r) == {"label", "path", "build_id", "arch", "calls", "versions", "inline_args", "bands", "seconds"}
        assert list(r["seconds"]) == ["open", "calls", "versions", "inline_args", "bands"]
    assert d["binaries"][0]["build_id"] == expected("x86_64")["build_id"]
    assert list(d["plots"]) == list(PLOTS)
    from PIL import Image

    for name in PLOTS:
        path = tmp_path / "plots" / f"{name}.png"
        assert d["plots"][name] == str(path)
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as im:
            im.verify()
            assert im.size[0] > 1000 and im.size[1] > 400  # side-by-side panels, readable


def test_svg_plots(tmp_path: Path) -> None:
    _run(tmp_path, "--plots", str(tmp_path), "--plot-format", "svg")
    for name in PLOTS:
        root = ET.parse(tmp_path / f"{name}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "x86_64-O3/corpus" in (tmp_path / f"{name}.svg").read_text()  # the legend names the builds


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(BIN / "x86_64/corpus"), str(BIN / "x86_64-O3/corpus")]) == 0
    out = capsys.readouterr().out
    assert "1. .call vs .inline" in out and "3. arguments at inline sites" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("fully-inlined  "))
    assert row.split()[1:] == ["9", "(15.0", "%)", "10", "(16.7", "%)"]
    assert re.search(r"x86_64-O3/corpus\s+original\+clones\s+scale_mixed\s+src/constprop.c\s+scale_mixed, ", out)


def test_debug_for_a_separate_debug_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    split = BIN / "x86_64-split"
    out = tmp_path / "split.json"
    argv = ["stats", str(BIN / "x86_64/corpus"), str(split / "corpus")]
    argv += ["--debug-for", f"{split / 'corpus'}={split / 'corpus.debug'}", "--format", "json", "-o", str(out)]
    assert main(argv) == 0
    plain, separate = json.loads(out.read_text())["binaries"]
    assert separate["inline_args"] == plain["inline_args"] == of(doc, "x86_64")["inline_args"]
    assert separate["calls"] == plain["calls"]


def test_debug_for_an_unknown_binary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(BIN / "x86_64/corpus"), "--debug-for", "other=x.debug"]) == 2
    assert "--debug-for other=x.debug" in capsys.readouterr().err


# -- Debian's kernels ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernels() -> list[patchscope.Binary]:
    paths = [vmlinux_path("6.1.0-50"), vmlinux_path("6.1.0-56")]
    if None in paths:
        pytest.skip("Debian 6.1.0-50 and 6.1.0-56 amd64 vmlinux absent (../shared/data/fetch-debian-kernel.sh)")
    return [patchscope.open(p) for p in paths]


def test_kernels(kernels: list[patchscope.Binary]) -> None:
    """Figures of the two 6.1 builds; the examples counted with nm (``nm vmlinux | grep -c``)."""
    old, new = kernels
    calls = stats.calls(new)
    assert calls["functions"] == {
        "not-inlined": 39_966,
        "fully-inlined": 28_402,
        "selectively-inlined": 5_212,
        "symbol-only": 1_023,
    }
    assert calls["call_sites"] == {
        "inline": 311_113,
        "dwarf_calls": 209_003,
        "here": 198_203,
        "here_no_dwarf": 2_176,
        "elsewhere": 733,
        "indirect": 7_891,
    }
    assert stats.calls(old)["call_sites"]["inline"] == 309_306
    v = stats.versions(new, examples=3)
    copies = {e["name"]: e["instances"] for e in v["shapes"]["several-copies"]["examples"]}
    # nm: cpumask_weight 16 times, cpumask_weight.constprop.0 14; jhash 17, jhash.constprop.0 4
    assert copies["cpumask_weight"] == ["cpumask_weight (16 copies)", "cpumask_weight.constprop.0 (14 copies)"]
    assert copies["jhash"] == ["jhash (17 copies)", "jhash.constprop.0 (4 copies)"]
    originals = {e["name"]: e["instances"] for e in v["shapes"]["original+clones"]["examples"]}
    assert originals["mod_lruvec_page_state"] == [
        "mod_lruvec_page_state",
        "mod_lruvec_page_state.constprop.0 (5 copies)",
    ]
    assert {k: s["functions"] for k, s in v["shapes"].items()} == {
        "several-copies": 85,
        "original+clones": 146,
        "several-clones": 9,
        "one-clone": 891,
        "cold-part": 2_860,
    }
    a = stats.inline_args(new, top=3)
    assert a["sites_by_class"] == {"all": 198_120, "some": 27_710, "none": 60_752, "no-params": 24_531}
    assert [w["name"] for w in a["worst"]] == ["arch_static_branch", "arch_test_bit", "_test_bit"]
