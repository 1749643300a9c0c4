"""The function inventory of every fixture, against the oracle built from readelf and
llvm-dwarfdump (fixtures/expected), and the shapes each fixture was written to produce."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

import patchscope
from conftest import LINKED, expected, fixture_path
from patchscope.report.inventory import InventoryView


def records(variant: str) -> dict[str, list[dict]]:
    b = patchscope.open(fixture_path(variant))
    view = InventoryView(b)
    out: dict[str, list[dict]] = defaultdict(list)
    for fid in b.find_functions("*"):
        r = view.record(fid)
        out[r["name"]].append(r)
    return out


@pytest.mark.parametrize("variant", LINKED)
def test_counts_match_oracle(variant: str) -> None:
    exp = expected(variant)
    b = patchscope.open(fixture_path(variant))
    dc = exp["die_counts"]
    assert b.subprograms.num_rows == dc["subprogram"]
    assert b.inline_sites.num_rows == dc["inlined_subroutine"]
    assert b.call_sites.num_rows == dc["call_site"]
    assert sum(b.call_sites.column("tail").to_pylist()) == dc["call_site_tail"]
    assert b.lines.num_rows == exp["line_table"]["rows"]
    flags = b.lines.column("flags").to_numpy()
    assert int(((flags & 1) != 0).sum()) == exp["line_table"]["is_stmt"]
    assert int(((flags & 2) != 0).sum()) == exp["line_table"]["end_sequence"]
    assert b.info["build_id"] == exp["build_id"]


@pytest.mark.parametrize("variant", LINKED)
def test_every_function_matches_oracle(variant: str) -> None:
    exp = expected(variant)["functions"]
    got = records(variant)
    dwarf_names = {n for n, rs in got.items() if any(r["status"] != "symbol-only" for r in rs)}
    assert dwarf_names == set(exp)
    for name, e in exp.items():
        rs = [r for r in got[name] if r["status"] != "symbol-only"]
        assert sum(r["inline_sites"]["count"] for r in rs) == e["inline_sites"], name
        callers = Counter(s["caller"].split(".")[0] for r in rs for s in r["inline_sites"]["sites"])
        assert dict(callers) == e["inline_in"], name
        instances = [i for r in rs for i in r["instances"]]
        assert len(instances) == e["out_of_line"], name
        ranges = sorted(sorted((int(p["low"], 16), int(p["high"], 16)) for p in i["ranges"]) for i in instances)
        assert ranges == sorted(sorted(map(tuple, rr)) for rr in e["out_of_line_ranges"]), name
        assert sorted(f"{r['decl_file'].split('/')[-1]}:{r['decl_line']}" for r in rs) == sorted(e["decls"]), name
        assert any(i["noreturn"] for i in instances) == e["noreturn"] or not instances, name


@pytest.mark.parametrize("variant", LINKED)
def test_symbols_join_by_address(variant: str) -> None:
    """Every function symbol of the oracle is an instance's symbol or a symbol-only function."""
    syms = {(s["name"], s["address"]) for s in expected(variant)["func_symbols"]}
    got = records(variant)
    seen = set()
    for rs in got.values():
        for r in rs:
            for i in r["instances"]:
                for p in i["ranges"]:
                    if p["symbol"]:
                        seen.add((p["symbol"], int(p["low"], 16)))
    missing = {s for s in syms - seen if not s[0].startswith("__aarch64_")}
    assert not missing


def test_x86_64_shapes() -> None:
    """The cases the C sources were written for (fixtures/README.md), as patchscope names them."""
    got = records("x86_64")

    def only(name: str) -> dict:
        (r,) = got[name]
        return r

    def symbols(name: str) -> list[list[str]]:
        return [i["symbols"] for i in only(name)["instances"]]

    assert symbols("hot_sum") == [["hot_sum", "hot_sum.cold"]]
    assert symbols("validate_cfg") == [["validate_cfg.isra.0", "validate_cfg.isra.0.cold"]]
    assert only("validate_cfg")["instances"][0]["suffixes"] == ["isra.0"]
    assert symbols("combo_worker") == [["combo_worker.constprop.0.isra.0"]]
    assert only("combo_worker")["instances"][0]["suffixes"] == ["constprop.0", "isra.0"]
    assert symbols("scale_table") == [["scale_table.constprop.0"]]
    assert symbols("compute_level") == [["compute_level.isra.0"]]
    assert symbols("drain") == [["drain.part.0", "drain.part.0.cold"]]
    bp = only("buf_process")
    assert bp["status"] == "selectively-inlined"
    assert symbols("buf_process") == [["buf_process.part.0"]]
    assert bp["inline_sites"]["count"] == 3
    assert {s["caller"] for s in bp["inline_sites"]["sites"]} == {"part_entry"}
    assert only("clampi")["status"] == "fully-inlined"
    assert only("clampi")["instances"] == []
    assert only("helper_both")["status"] == "selectively-inlined"
    assert only("wrapper_tail")["status"] == "not-inlined"
    assert [r["decl_file"] for r in got["lookup"]] == ["src/collide_a.c", "src/collide_b.c"]
    assert only("fatal_error")["instances"][0]["noreturn"]
    assert only("_start")["status"] == "symbol-only"


def test_o3_keeps_original_beside_clone() -> None:
    got = records("x86_64-O3")
    (r,) = got["scale_mixed"]
    assert sorted(i["symbol"] for i in r["instances"]) == ["scale_mixed", "scale_mixed.constprop.0"]


def test_isra_parameter_ref_and_constants() -> None:
    """DW_OP_GNU_parameter_ref and DW_AT_const_value reach the params table as such."""
    b = patchscope.open(fixture_path("x86_64"))
    rows = b.sql(
        """select s.name as fn, p.name as param, p.loc_kind, p.const_value
           from params p join subprograms c on p.owner = c.die
           join subprograms s on c.origin = s.die"""
    ).to_pylist()
    by = {(r["fn"], r["param"]): r for r in rows}
    # params carry their own name only in abstract DIEs; concrete ones point at them
    origin_names = b.sql(
        """select s.name as fn, a.name as param, p.loc_kind, p.const_value
           from params p join subprograms c on p.owner = c.die
           join subprograms s on c.origin = s.die
           join params a on p.origin = a.die"""
    ).to_pylist()
    by.update({(r["fn"], r["param"]): r for r in origin_names})
    refs, consts = expected("x86_64")["parameter_ref_params"], expected("x86_64")["const_value_params"]
    assert len(refs) == 4 and sum(c["in"] == "subprogram" for c in consts) == 5  # not an empty oracle
    for ref in refs:
        assert by[(ref["function"], ref["param"])]["loc_kind"] == 4, ref
    for c in consts:
        if c["in"] != "subprogram":
            continue
        r = by[(c["function"], c["param"])]
        assert r["loc_kind"] == 5 and r["const_value"] == int(c["value"], 16), c
