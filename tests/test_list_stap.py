"""``patchscope list`` on the fixture: the facts where its listing differs from ``stap -L`` on
purpose (docs/list-vs-stap.md), and, when SystemTap is installed, a cross-check against it.

On purpose: a clone is listed under its symbol (``compute_level.isra.0``, stap says
``compute_level``) with the parameters it really has; a ``.part`` body is listed (stap leaves it
out); a ``.cold`` part is not a function (stap lists ``hot_sum.cold``); one ``.inline`` line per
inlined function carries the variables present at every site (``?``: at some); ``-v`` gives one
line per probe stap places (one per entry pc), at its entry pc. Independent evidence: the fixture's oracle
(readelf), ``llvm-dwarfdump`` and ``patchscope functions -v``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import BIN, ROOT, expected

CORPUS = BIN / "x86_64" / "corpus"
P = f'process("{CORPUS}")'
ORACLE = expected("x86_64")

LINE = re.compile(
    r'^(?:process\("[^"]*"\)|kernel)\.function\("([^"@]*)(?:@([^"]*):(\d+))?"\)'
    r"((?:\.(?:inline|call|return))?)(?: pc=(\S+))?(.*)$"
)
#: GCC's suffixes of a changed body or a split part.
SUFFIX = re.compile(r"(\.(?:isra|constprop|part|lto_priv|cold)(?:\.\d+)?)+$")


def _core_has_variables() -> bool:
    from patchscope import _core

    return hasattr(_core, "scope_variables")


#: The variables of a line come from patchscope.index.variables, merged from its own branch.
needs_variables = pytest.mark.skipif(not _core_has_variables(), reason="patchscope._core has no scope_variables yet")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def listing(point: str, *opts: str) -> list[dict]:
    r = run("list", CORPUS, P + point, *opts)
    assert r.returncode == 0, r.stderr
    return [parse(ln) for ln in r.stdout.splitlines()]


def parse(text: str) -> dict:
    m = LINE.match(text)
    assert m, f"not a stap -L line: {text!r}"
    name, file, line, suffix, pcs, rest = m.groups()
    return {
        "text": text,
        "name": name,
        "source": SUFFIX.sub("", name),
        "file": file,
        "line": int(line) if line else None,
        "suffix": suffix,
        "pcs": [int(a, 16) for a in pcs.split(",")] if pcs else [],
        "vars": variables(rest),
    }


def variables(rest: str) -> list[str]:
    """``$name:type`` items; a type may hold spaces (``$q:struct queue*``) but never a ``$``."""
    rest = rest.strip()
    return ["$" + v for v in rest[1:].split(" $")] if rest.startswith("$") else []


def symbol(name: str) -> int:
    (addr,) = [s["address"] for s in ORACLE["func_symbols"] if s["name"] == name]
    return addr


# -- what differs from stap on purpose -----------------------------------------------------------


def test_clones_under_their_symbol_names() -> None:
    lines = listing('.function("*")')
    entries = {ln["name"] for ln in lines if ln["suffix"] == ""}
    clones = {s["name"] for s in ORACLE["func_symbols"] if re.search(r"\.(isra|constprop|part)\.\d+$", s["name"])}
    assert "compute_level.isra.0" in clones and "buf_process.part.0" in clones
    assert clones <= entries, clones - entries
    # ... and never under the source name stap gives them, which has no out-of-line body
    assert not {SUFFIX.sub("", c) for c in clones} & entries
    (cl,) = [ln for ln in lines if ln["name"] == "compute_level.isra.0"]
    assert (cl["file"], cl["line"]) == ("src/isra.c", 5)


def test_process_without_a_path_is_named_by_the_binarys(tmp_path: Path) -> None:
    """``process.function(...)`` (stap -x PROGRAM): the lines name the program by its absolute
    path, as stap prints them, never ``process("")``."""
    r = run("list", CORPUS, 'process.function("tree_sum")')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'process("{CORPUS.resolve()}").function("tree_sum@'), r.stdout


def test_part_body_listed() -> None:
    for point in ('.function("*")', '.function("buf_process").call', '.function("buf_process*").return'):
        names = [ln["name"] for ln in listing(point)]
        assert "buf_process.part.0" in names, point
    (part,) = [ln for ln in listing('.function("buf_process")', "-v") if ln["suffix"] == ""]
    assert part["name"] == "buf_process.part.0"
    assert part["pcs"] == [symbol("buf_process.part.0")]
    # .inline reaches the three inline sites only
    assert {ln["name"] for ln in listing('.function("buf_process").inline', "-v")} == {"buf_process"}
    # drain.part.0 has a .cold part; one body, one line
    drain = listing('.function("drain").call')
    assert [(d["name"], d["file"], d["line"]) for d in drain] == [("drain.part.0", "src/combo.c", 39)]


def test_cold_part_is_not_a_function() -> None:
    colds = {s["name"] for s in ORACLE["func_symbols"] if s["name"].endswith(".cold")}
    assert "hot_sum.cold" in colds
    for point in ('.function("*")', '.function("*").call', '.function("*").inline'):
        names = {ln["name"] for ln in listing(point)}
        assert not names & colds, point
    assert "hot_sum" in {ln["name"] for ln in listing('.function("*").call')}


def test_inline_line_per_function_with_variables_at_every_site() -> None:
    (one,) = listing('.function("clampi").inline')
    assert (one["name"], one["file"], one["line"], one["suffix"]) == ("clampi", "src/inline.c", 5, ".inline")
    each = listing('.function("clampi").inline', "-v")
    # 6 sites, two of them at one entry pc (0x1aae): stap places one probe there (inline_dupes)
    assert ORACLE["functions"]["clampi"]["inline_sites"] == 6 and len(each) == 5
    # clampi's v, lo, hi are bound only in a later location view at every site (rules:
    # inline-args-differ, view_only 6 each): a probe there sees none of them
    assert one["vars"] == [] and all(ln["vars"] == [] for ln in each)
    # the summary line: a variable without "?" is present at every probe, with "?" at some
    # (mix32: 3 sites at 2 entry pcs, x at one; buf_process: q and x at all 3)
    for name, want, probes in (("mix32", ["$x:unsigned int?"], 2), ("buf_process", ["$q:struct queue*", "$x:int"], 3)):
        (one,) = listing(f'.function("{name}").inline')
        each = listing(f'.function("{name}").inline', "-v")
        assert ORACLE["functions"][name]["inline_sites"] == 3 and len(each) == probes
        per_site = [set(ln["vars"]) for ln in each]
        everywhere = set.intersection(*per_site)
        somewhere = set.union(*per_site) - everywhere
        assert set(one["vars"]) == everywhere | {v + "?" for v in somewhere}
        assert one["vars"] == want, name


@needs_variables
def test_variables_are_the_ones_with_a_value_there() -> None:
    # compute_level.isra.0 at 0x1670: x in %rdx; cfg is only DW_OP_GNU_parameter_ref (the caller's
    # value), and l begins at 0x1673 (llvm-dwarfdump --debug-info=0x7dd). stap: "$x:int $cfg:…"
    (cl,) = [ln for ln in listing('.function("compute_level*")') if ln["suffix"] == ""]
    assert cl["vars"] == ["$x:int"]
    # buf_process's q and x are in registers at its three sites; mix32's x at 1 of its 3
    (bp,) = listing('.function("buf_process").inline')
    assert sorted(bp["vars"]) == ["$q:struct queue*", "$x:int"]
    (mx,) = listing('.function("mix32").inline')
    assert mx["vars"] == ["$x:unsigned int?"]
    # clampi's v, lo and hi are bound only in a location view of each site's entry
    # ([0x1a00, 0x1a00): DW_OP_reg5 RDI), which a probe by address does not see; stap lists none
    (one,) = listing('.function("clampi").inline')
    assert one["vars"] == []


LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")


def _libc_debug() -> Path | None:
    out = subprocess.run(["readelf", "-n", str(LIBC)], capture_output=True, text=True).stdout if LIBC.is_file() else ""
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    p = Path(f"/usr/lib/debug/.build-id/{m.group(1)[:2]}/{m.group(1)[2:]}.debug") if m else None
    return p if p and p.is_file() else None


@needs_variables
def test_copies_of_one_function_keep_their_types() -> None:
    """glibc's strftime_l.c is built for char and for wchar_t: memcpy_lowcase is inlined twice
    from each copy (two abstract DIEs, one source function). $dest is char* at two sites and
    wchar_t* at the other two, so each type is present at some sites only."""
    debug = _libc_debug()
    if debug is None:
        pytest.skip("glibc's debug file absent (apt-get install libc6-dbg)")
    point = f'process("{LIBC}").function("memcpy_lowcase").inline'
    r = run("list", LIBC, point, "--debug-file", debug)
    assert r.returncode == 0, r.stderr
    (line,) = [parse(ln) for ln in r.stdout.splitlines()]
    assert {"$dest:char*?", "$dest:wchar_t*?", "$loc:locale_t"} <= set(line["vars"]), line["vars"]


def test_verbose_pcs_are_the_inline_sites() -> None:
    pcs = sorted(a for ln in listing('.function("clampi").inline', "-v") for a in ln["pcs"])
    r = run("functions", CORPUS, "clampi", "-v", "--format", "json")
    assert r.returncode == 0, r.stderr
    (fn,) = json.loads(r.stdout)["functions"]
    # one line per entry pc, as stap places one probe per entry pc (inline_dupes)
    assert pcs == sorted({int(s["entry_pc"], 16) for s in fn["inline_sites"]["sites"]})
    if shutil.which("llvm-dwarfdump") is None:
        pytest.skip("llvm-dwarfdump absent: checked against patchscope functions only")
    assert pcs == sorted(set(_dwarfdump_entry_pcs("clampi")))


def _dwarfdump_entry_pcs(function: str) -> list[int]:
    """DW_AT_entry_pc of every DW_TAG_inlined_subroutine of ``function``, from llvm-dwarfdump."""
    out = subprocess.run(["llvm-dwarfdump", "--debug-info", str(CORPUS)], capture_output=True, text=True).stdout
    pcs = []
    for die in out.split("\n\n"):
        if "DW_TAG_inlined_subroutine" in die and f'"{function}")' in die.split("DW_AT_abstract_origin")[1][:80]:
            pcs.append(int(re.search(r"DW_AT_entry_pc\s+\((0x[0-9a-f]+)\)", die).group(1), 16))
    assert pcs, f"no inline site of {function} in llvm-dwarfdump's output"
    return pcs


# -- against SystemTap itself --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub() -> Path:
    if shutil.which("stap") is None:
        pytest.skip("SystemTap absent (apt-get install systemtap)")
    out = subprocess.run([str(ROOT / "bench" / "stap_stub.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def stap(stub: Path, point: str) -> list[dict]:
    r = subprocess.run(["stap", "-r", str(stub), "-L", P + point], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [parse(ln) for ln in r.stdout.splitlines()]


@pytest.mark.parametrize("mode", ["", ".call", ".inline"])
def test_every_stap_function_has_a_line(stub: Path, mode: str) -> None:
    theirs = stap(stub, f'.function("*"){mode}')
    ours = listing(f'.function("*"){mode}')
    everything = listing('.function("*")')
    assert len(theirs) > 20
    keys = {(ln["source"], ln["file"], ln["line"]) for ln in ours}
    names = {ln["name"] for ln in ours}
    bodies = {ln["name"] for ln in everything if ln["suffix"] == ""}
    for t in theirs:
        if t["file"] is not None:
            assert (t["name"], t["file"], t["line"]) in keys, t["text"]
        elif t["name"].endswith(".cold"):  # stap lists a .cold part as a function: ours is its body's
            assert SUFFIX.sub("", t["name"]) in {ln["source"] for ln in everything}, t["text"]
        elif mode == ".inline":  # stap lets bare symbols into .inline: ours lists them out of line
            assert t["name"] in bodies, t["text"]
        else:  # a symbol, or a body whose DIE has DW_AT_ranges (drain.part.0): listed under its name
            assert t["name"] in names, t["text"]
    # the other way round: ours has nothing stap lacks but the .part bodies
    theirs_keys = {(t["name"], t["file"], t["line"]) for t in theirs} | {(t["name"], None, None) for t in theirs}
    extra = [ln["text"] for ln in ours if (ln["source"], ln["file"], ln["line"]) not in theirs_keys]
    assert all(".part." in e for e in extra), extra
    if mode == ".call":
        assert any("buf_process.part.0" in e for e in extra)


@needs_variables
def test_our_variables_are_among_stap_ones(stub: Path) -> None:
    """A variable with a value at an out-of-line entry is one stap lists there too (stap also
    lists those with a location that cannot be read there, and a clone's source parameters).
    ``.call``: stap's ``function("*")`` line of a function both inlined and out of line shows
    only the variables of every instance (helper_both: none)."""
    theirs: dict[tuple, set[str]] = {}
    for t in stap(stub, '.function("*").call'):
        theirs.setdefault((t["name"], t["file"], t["line"]), set()).update(t["vars"])
    checked = 0
    for ln in listing('.function("*").call'):
        key = (ln["source"], ln["file"], ln["line"])
        # a .part body's addresses are not those of stap's line (its inline sites)
        if ".part" not in ln["name"] and key in theirs and ln["vars"]:
            assert {v.removesuffix("?") for v in ln["vars"]} <= theirs[key], ln["text"]
            checked += 1
    assert checked > 20


def test_list_json_follows_its_schema() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "patchscope.cli.main",
            "list",
            str(BIN / "x86_64/corpus"),
            "--format=json",
            'process("x").function("*")',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/list-2.json").read_text()))
    assert any(ln["point"].startswith('process("x").function("compute_level.isra.0@') for ln in doc["lines"])
