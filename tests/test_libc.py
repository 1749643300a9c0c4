"""The atomic rules on real code: Debian bookworm's glibc (libc6 with its libc6-dbg debug file) for
arm64, ppc64el, amd64, s390x and armhf, when ``scripts/fetch-libc-dbg`` has put them in the cache.

Two kinds of test:

* the counts and a few exact windows and regions, verified function by function against each
  architecture's ``objdump -d`` on glibc 2.36-9+deb12u14 (the build-ids in ``BUILDS``; another
  build skips them);
* the ``objdump`` cross-check itself, on whatever build is in the cache, when the architecture's
  objdump and ``eu-unstrip`` are installed: every LL/SC pair, transaction begin and commit and
  ``bl __aarch64_*`` site objdump shows is found, and nothing else.

s390x's glibc has lock elision too (sysdeps/unix/sysv/linux/s390/elision-*.c: TBEGIN … TEND,
TABORT when nested) and no LL/SC (compare-and-swap is one instruction).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import patchscope
from patchscope import rules
from patchscope.index.context import Context

CODES = ("llsc-window", "tm-region", "atomic-helper-call")
ARCHES = ["arm64", "ppc64el", "amd64", "s390x", "armhf"]
OBJDUMP = {
    "arm64": "aarch64-linux-gnu-objdump",
    "ppc64el": "powerpc64le-linux-gnu-objdump",
    "amd64": "objdump",
    "s390x": "s390x-linux-gnu-objdump",
    "armhf": "arm-linux-gnueabihf-objdump",
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "patchscope-libc"


def build_id(path: Path) -> str | None:
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec["sh_type"] == "SHT_NOTE":
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return note["n_desc"]
    return None


def libc_paths(arch: str) -> tuple[Path, Path] | None:
    """libc.so.6 and its debug file as scripts/fetch-libc-dbg extracts them, or None."""
    root = cache_dir() / arch / "root"
    found = sorted(root.glob("lib/*/libc.so.6")) + sorted(root.glob("usr/lib/*/libc.so.6"))
    if not found:
        return None
    libc = found[0].resolve()
    bid = build_id(libc)
    if not bid:
        return None
    debug = root / "usr/lib/debug/.build-id" / bid[:2] / f"{bid[2:]}.debug"
    return (libc, debug) if debug.is_file() else None


@dataclass
class Libc:
    arch: str
    path: Path
    debug: Path
    build_id: str
    binary: patchscope.Binary
    found: dict[str, list[dict]]  # code -> findings, with "function" and the instance's "entry"


_OPENED: dict[str, Libc] = {}


def opened(arch: str) -> Libc:
    """The libc of ``arch`` with its findings (once per session), or a skip naming the script."""
    if arch not in _OPENED:
        paths = libc_paths(arch)
        if paths is None:
            pytest.skip(f"Debian's libc6:{arch} + libc6-dbg:{arch} absent (scripts/fetch-libc-dbg {arch})")
        path, debug = paths
        b = patchscope.open(path, debug_file=debug)
        cx = Context(b)
        names = b.inventory.functions.column("name").to_pylist()
        found: dict[str, list[dict]] = {c: [] for c in CODES}
        for r in rules.findings(b).findings.to_pylist():
            if r["code"] in found:
                r["evidence"] = json.loads(r["evidence"])
                r["function"] = names[r["fid"]]
                r["entry"] = cx.inst_low(r["instance"])
                found[r["code"]].append(r)
        _OPENED[arch] = Libc(arch, path, debug, b.info["build_id"], b, found)
    return _OPENED[arch]


@pytest.fixture(params=ARCHES)
def libc(request: pytest.FixtureRequest) -> Libc:
    return opened(request.param)


def addr(line: str) -> int:
    """The address of an evidence line ``0x…: text``."""
    return int(line.split(":", 1)[0], 16)


def mnemonics(lines: list[str]) -> list[str]:
    return [line.split(": ", 1)[1].split()[0] for line in lines]


# -- counts and exact cases, glibc 2.36-9+deb12u14 ----------------------------------------------

#: Build-id of each libc.so.6 the figures below were verified on.
BUILDS = {
    "amd64": "93ac61ec5a8eb1396f9fbd350e3169a558528a40",
    "arm64": "6f268ff546c56d7f14e9501a55698cc2d0ab4732",
    "ppc64el": "9cdb6a80330b3cf74bdb410dd24e32d13f79e8a4",
    "s390x": "a5e38d4f60f750c18831322644ca72e13797abde",
    "armhf": "23afff97f2f88057df89abc0852df440e8d6f325",
}

#: Per architecture, per code: (findings, instances, source functions); for atomic-helper-call
#: also the call sites. Functions are source functions: a static function of a file included
#: in several units (sem_waitcommon.c's __sem_wait_cleanup, 3 times) is one function, several
#: instances; objdump, by symbol name, sees 344 (arm64 helpers) and 348 (ppc64el windows).
COUNTS = {
    "arm64": {
        # the 22 libgcc outline helpers linked into libc, one ld[a]xr … st[l]xr loop each
        "llsc-window": (22, 22, 22),
        "tm-region": (0, 0, 0),
        "atomic-helper-call": (349, 349, 344, 994),
    },
    "ppc64el": {
        # 945 lwarx/stwcx. + 47 ldarx/stdcx.
        "llsc-window": (992, 353, 348),
        # tbegin. in __lll_{lock,clocklock,trylock}_elision; the tend. of __lll_unlock_elision
        "tm-region": (4, 4, 4),
        "atomic-helper-call": (0, 0, 0, 0),
    },
    "amd64": {
        "llsc-window": (0, 0, 0),
        # xbegin in three __lll_*_elision, the xend of __lll_unlock_elision; the 30 *_avx2_rtm
        # string functions only xtest (vzeroall or vzeroupper before returning): no region
        "tm-region": (4, 4, 4),
        "atomic-helper-call": (0, 0, 0, 0),
    },
    "s390x": {
        "llsc-window": (0, 0, 0),
        # tbegin in __lll_{lock,clocklock,trylock}_elision; the tend of __lll_unlock_elision
        "tm-region": (4, 4, 4),
        "atomic-helper-call": (0, 0, 0, 0),
    },
    "armhf": {
        # ARMv7 Thumb-2: every atomic inline, 985 ldrex/strex; the calls to glibc's own
        # __atomic_wide_counter_* (plain loads and adds) are not libatomic's
        "llsc-window": (985, 359, 354),
        "tm-region": (0, 0, 0),
        "atomic-helper-call": (0, 0, 0, 0),
    },
}


def verified(lc: Libc) -> None:
    if lc.build_id != BUILDS[lc.arch]:
        pytest.skip(
            f"figures verified on libc6:{lc.arch} 2.36-9+deb12u14 (build-id {BUILDS[lc.arch]}), not {lc.build_id}"
        )


def test_counts(libc: Libc) -> None:
    verified(libc)
    for c, want in COUNTS[libc.arch].items():
        rows = libc.found[c]
        got = (len(rows), len({r["instance"] for r in rows}), len({r["fid"] for r in rows}))
        if c == "atomic-helper-call":
            got += (sum(len(r["evidence"]["calls"]) for r in rows),)
        assert got == want, c
    windows = libc.found["llsc-window"]
    assert all(w["evidence"]["terminated"] for w in windows)


def test_arm64_outline_helpers() -> None:
    libc = opened("arm64")
    verified(libc)
    windows = {r["function"]: r for r in libc.found["llsc-window"]}
    assert all(name.startswith("__aarch64_") for name in windows)
    cas = windows["__aarch64_cas4_acq"]
    ev = cas["evidence"]
    assert (cas["address"], ev["low"], ev["high"]) == (0x13747C, "0x13747c", "0x13748c")
    assert ev["instructions"] == [
        "0x13747c: ldaxr w0, [x2]",
        "0x137480: cmp w0, w16",
        "0x137484: b.ne #0x137490",
        "0x137488: stxr w17, w1, [x2]",
    ]
    assert (ev["acquire"], ev["release"], ev["access_size"]) == (True, False, 4)
    assert ev["branch_targets"] == [{"target": "0x13747c", "from": "0x13748c"}]  # the cbnz retry
    assert ev["exits"] == [{"from": "0x137484", "to": "0x137490"}]  # the compare failed
    assert ev["inline"].startswith("no DWARF")  # libgcc's helpers come without debug info
    swp = windows["__aarch64_swp4_rel"]["evidence"]
    assert mnemonics(swp["instructions"]) == ["ldxr", "stlxr"]
    assert (swp["low"], swp["acquire"], swp["release"]) == ("0x13775c", False, True)
    # every helper with a window is called, and every helper called has its window here
    calls = [c for r in libc.found["atomic-helper-call"] for c in r["evidence"]["calls"]]
    per_helper = Counter(c["helper"] for c in calls)
    assert set(per_helper) == set(windows)
    assert per_helper.most_common(2) == [("__aarch64_swp4_rel", 413), ("__aarch64_cas4_acq", 394)]
    assert {(c["via"], c["tail"], c["family"]) for c in calls} == {("direct", False, "outline")}
    (mc,) = [r for r in libc.found["atomic-helper-call"] if r["evidence"]["instance"] == "malloc_consolidate"]
    assert mc["evidence"]["helpers"] == ["__aarch64_swp8_acq"]  # atomic_exchange_acq on a fastbin
    # the helper it calls is in this binary, with its window
    assert {(c["helper"], c["via"]) for c in mc["evidence"]["calls"]} == {("__aarch64_swp8_acq", "direct")}
    swp8 = windows["__aarch64_swp8_acq"]
    assert {c["target"] for c in mc["evidence"]["calls"]} == {f"{swp8['entry']:#x}"}


def test_ppc64el_windows_and_elision() -> None:
    libc = opened("ppc64el")
    verified(libc)
    windows = libc.found["llsc-window"]
    assert Counter((w["evidence"]["load"], w["evidence"]["store"]) for w in windows) == {
        ("lwarx", "stwcx."): 945,
        ("ldarx", "stdcx."): 47,
    }
    unlock = [w["evidence"] for w in windows if w["function"] == "__lll_unlock_elision"]
    assert [(e["low"], e["high"], e["instructions"]) for e in unlock] == [
        ("0x9e640", "0x9e648", ["0x9e640: lwarx r10, 0, r3", "0x9e644: stwcx. r9, 0, r3"])
    ]
    malloc = [w["evidence"] for w in windows if w["evidence"]["instance"] == "__GI___libc_malloc"]
    assert [mnemonics(e["instructions"]) for e in malloc] == [["lwarx", "subf.", "bne", "stwcx."], ["lwarx", "stwcx."]]
    assert malloc[0]["exits"] == [{"from": "0xbbe90", "to": "0xbbe9c"}]
    regions = {r["function"]: r["evidence"] for r in libc.found["tm-region"]}
    assert {f: (e["begin"], e["ends"], e["ranges"]) for f, e in regions.items()} == {
        "__lll_lock_elision": ("0x9e290", ["0x9e2a4: tabort. r10"], [["0x9e290", "0x9e2a8"]]),
        "__lll_clocklock_elision": ("0x9e3e0", ["0x9e3f4: tabort. r10"], [["0x9e3e0", "0x9e3f8"]]),
        "__lll_trylock_elision": ("0x9e560", ["0x9e574: tend. 0"], [["0x9e560", "0x9e578"]]),
        # the commit of the transaction __lll_lock_elision began: from the (global) entry
        "__lll_unlock_elision": (None, ["0x9e614: tend. 0"], [["0x9e600", "0x9e618"]]),
    }
    assert all(e["kind"] == "HTM" and e["terminated"] for e in regions.values())
    assert regions["__lll_unlock_elision"]["opened_elsewhere"]
    # the elided lock returns with its transaction open (beq 0x9e2fc; li r3,0; blr): listed, not a member
    assert "0x9e300: blr" in regions["__lll_lock_elision"]["exits_without_end"]


def test_amd64_rtm() -> None:
    libc = opened("amd64")
    verified(libc)
    regions = {r["function"]: r for r in libc.found["tm-region"]}
    lock = regions["__lll_lock_elision"]
    ev = lock["evidence"]
    assert (lock["address"], ev["kind"], ev["begin"], ev["fallback"]) == (0x85BEE, "RTM", "0x85bee", "0x85bf4")
    assert [addr(x) for x in ev["instructions"]] == [0x85BEE, 0x85BF4, 0x85BF7, 0x85BF9, 0x85BFB, 0x85BFD, 0x85BFF]
    assert mnemonics(ev["instructions"]) == ["xbegin", "cmp", "jne", "mov", "test", "je", "xabort"]
    assert ev["exits_without_end"] == ["0x85c1f: ret", "0x85c67: ret"]  # the elided lock returns at 0x85c1f
    assert ev["ends"] == ev["aborts"] == ["0x85bff: xabort $0xff"]
    assert ev["instance"] == "__lll_lock_elision"
    assert [c["function"] for c in ev["inline_context"]] == ["_xbegin"]
    trylock = regions["__lll_trylock_elision"]["evidence"]
    assert trylock["ranges"] == [["0x85da3", "0x85dae"], ["0x85df0", "0x85df9"]]
    unlock = regions["__lll_unlock_elision"]
    ev = unlock["evidence"]
    assert (unlock["address"], ev["begin"], ev["opened_elsewhere"]) == (0x85E00, None, True)
    assert mnemonics(ev["instructions"]) == ["mov", "test", "jne", "xend"]
    assert ev["ends"] == ["0x85e06: xend"] and ev["ranges"] == [["0x85e00", "0x85e09"]]
    assert ev["instance"] == "__lll_unlock_elision"
    assert [c["function"] for c in ev["inline_context"]] == ["_xend"]
    assert regions["__lll_clocklock_elision"]["evidence"]["begin"] == "0x85cc2"


def test_s390x_elision() -> None:
    libc = opened("s390x")
    verified(libc)
    regions = {r["function"]: r["evidence"] for r in libc.found["tm-region"]}
    assert {f: (e["begin"], e["fallback"], e["ends"], e["ranges"]) for f, e in regions.items()} == {
        # tbegin; jne (the abort handler: ipm, restore the FPRs, ppa, retry) left out; the
        # started path tests the lock and returns in the transaction, else etnd: tend or tabort
        "__lll_lock_elision": (
            "0x92c8e",
            "0x92ca0",
            ["0x92cfe: tend", "0x92d60: tabort 0x101"],
            [["0x92c8e", "0x92ca0"], ["0x92ce2", "0x92d02"], ["0x92d60", "0x92d64"]],
        ),
        "__lll_clocklock_elision": (
            "0x92e16",
            "0x92e28",
            ["0x92e86: tend", "0x92f24: tabort 0x101"],
            [["0x92e16", "0x92e28"], ["0x92e6a", "0x92e8a"], ["0x92f24", "0x92f28"]],
        ),
        "__lll_trylock_elision": (
            "0x92fde",
            "0x92ff0",
            ["0x9302e: tend"],
            [["0x92fde", "0x92ff0"], ["0x9301c", "0x93032"]],
        ),
        # the commit of the transaction __lll_lock_elision began: lt; jne; tend from the entry
        "__lll_unlock_elision": (None, None, ["0x93082: tend"], [["0x93078", "0x93086"]]),
    }
    assert all(e["kind"] == "TX" and e["terminated"] for e in regions.values())
    assert regions["__lll_unlock_elision"]["opened_elsewhere"]
    lock = regions["__lll_lock_elision"]
    assert mnemonics(lock["instructions"])[:4] == ["tbegin", "jne", "lhi", "j"]
    assert lock["tests"] == ["0x92cf2: etnd %r1"] and lock["other_tm"] == []  # the ppa is the abort path's
    assert lock["exits_without_end"] == ["0x92c4c: br %r14"]  # the elided lock returns in the transaction


def test_armhf_windows() -> None:
    libc = opened("armhf")
    verified(libc)
    windows = libc.found["llsc-window"]
    assert Counter(len(w["evidence"]["instructions"]) for w in windows) == {4: 500, 2: 424, 3: 60, 5: 1}
    # a compare-and-swap in an IT block: itt eq; strexeq; cmpeq; bne retry, outside the window
    (barrier,) = [w["evidence"] for w in windows if w["evidence"]["low"] == "0x5b650"]
    assert barrier["instance"] == "__GI___pthread_barrier_wait" and barrier["high"] == "0x5b65c"
    assert mnemonics(barrier["instructions"]) == ["ldrex", "cmp", "itt", "strex"]
    assert (barrier["branch_targets"], barrier["exits"]) == ([], [])
    start = [w["evidence"] for w in windows if w["evidence"]["instance"] == "__libc_start_call_main"]
    assert [(e["low"], e["high"]) for e in start][:1] == [("0x1e32a", "0x1e336")]
    assert start[0]["exits"] == [{"from": "0x1e330", "to": "0x1e33e"}]  # the compare failed
    # most windows are inside an inlined lock: _IO_acquire_lock_fct's at 102 places
    contexts = [w["evidence"]["inline_context"] for w in windows]
    inlined = Counter(c[0]["function"] for c in contexts if c)
    assert inlined.total() == 307 and inlined["_IO_acquire_lock_fct"] == 102


# -- the objdump cross-check ----------------------------------------------------------------------

ARM_COND = r"(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
#: Mnemonics objdump prints, per architecture: load-linked, store-conditional, transaction begin,
#: commit, and any other TM instruction.
PATTERNS = {
    "arm64": {
        "ll": r"ld[a]?x[rp][bh]?",
        "sc": r"st[l]?x[rp][bh]?",
        "begin": r"tstart",
        "end": r"tcommit",
        "tm": r"tcancel|ttest",
    },
    "ppc64el": {
        "ll": r"l[bhwdq]arx",
        "sc": r"st[bhwdq]cx\.",
        "begin": r"tbegin\.",
        "end": r"tend\.",
        "tm": r"tabort\S*\.|tcheck|tsr\.|treclaim\.|trechkpt\.|tsuspend\.|tresume\.",
    },
    "amd64": {"ll": r"(?!)", "sc": r"(?!)", "begin": r"xbegin", "end": r"xend", "tm": r"xabort|xtest"},
    "s390x": {"ll": r"(?!)", "sc": r"(?!)", "begin": r"tbeginc?", "end": r"tend", "tm": r"tabort|etnd|ntstg|ppa"},
    # in Thumb-2 IT blocks, a conditional strex (itt eq; strexeq …)
    "armhf": {
        "ll": rf"ldrex[bhd]?{ARM_COND}",
        "sc": rf"strex[bhd]?{ARM_COND}",
        "begin": r"(?!)",
        "end": r"(?!)",
        "tm": r"(?!)",
    },
}
HEADER = re.compile(r"^([0-9a-f]+) <(.+)>:$")
INSN = re.compile(r"^\s*([0-9a-f]+):\t(\S+)\s*(.*)$")
HELPER_CALL = re.compile(r"^[0-9a-f]+ <(__aarch64_[a-z0-9_]+)>$")


@dataclass
class Objdump:
    #: per function (objdump's symbol header: its address), its events: (address, kind, mnemonic)
    events: dict[int, list[tuple[int, str, str]]]
    names: dict[int, str]
    helper_calls: dict[int, str]  # bl/b site -> helper


def objdump(lc: Libc, tmp: Path) -> Objdump:
    tool, unstrip = shutil.which(OBJDUMP[lc.arch]), shutil.which("eu-unstrip")
    if not tool or not unstrip:
        pytest.skip(f"{OBJDUMP[lc.arch]} and eu-unstrip needed (binutils for {lc.arch}, elfutils)")
    full = tmp / "libc.so.6.full"
    subprocess.run([unstrip, "-o", str(full), str(lc.path), str(lc.debug)], check=True)
    text = subprocess.run([tool, "-d", "--no-show-raw-insn", str(full)], check=True, capture_output=True, text=True)
    pats = {kind: re.compile(p) for kind, p in PATTERNS[lc.arch].items()}
    out = Objdump(defaultdict(list), {}, {})
    fn = None
    for line in text.stdout.splitlines():
        m = HEADER.match(line)
        if m:
            fn = int(m.group(1), 16)
            out.names[fn] = m.group(2)
            continue
        m = INSN.match(line)
        if not m or fn is None:
            continue
        a, mn, ops = int(m.group(1), 16), m.group(2), m.group(3)
        for kind, p in pats.items():
            if p.fullmatch(mn):
                out.events[fn].append((a, kind, mn))
        if lc.arch == "arm64" and mn in ("bl", "b") and (h := HELPER_CALL.match(ops)):
            out.helper_calls[a] = h.group(1)
    return out


def test_objdump_crosscheck(libc: Libc, tmp_path: Path) -> None:
    od = objdump(libc, tmp_path)
    # LL/SC: each load-linked with the store-conditional after it, per function
    pairs: set[tuple[int, int]] = set()
    per_fn: Counter[int] = Counter()
    for fn, evs in od.events.items():
        ls = [e for e in evs if e[1] in ("ll", "sc")]
        for i, (a, kind, _) in enumerate(ls):
            nxt = ls[i + 1] if i + 1 < len(ls) else None
            if kind == "ll":
                assert nxt and nxt[1] == "sc", f"{od.names[fn]}: {a:#x} has no store-conditional"
                pairs.add((a, nxt[0]))
                per_fn[fn] += 1
            else:
                assert i and ls[i - 1][1] == "ll", f"{od.names[fn]}: {a:#x} has no load-linked"
    windows = libc.found["llsc-window"]
    got = {(int(w["evidence"]["low"], 16), addr(w["evidence"]["instructions"][-1])) for w in windows}
    assert len(got) == len(windows)
    assert got == pairs
    assert Counter(w["entry"] for w in windows) == per_fn  # each instance is one objdump function
    for w in windows:
        ev = w["evidence"]
        assert ev["terminated"] and mnemonics(ev["instructions"])[0] == ev["load"]

    # transactions: a region at each begin, one more per function whose commit no begin reaches
    tm = {fn: evs for fn, evs in od.events.items() if any(e[1] in ("begin", "end", "tm") for e in evs)}
    begins = {a for evs in tm.values() for a, kind, _ in evs if kind == "begin"}
    regions = libc.found["tm-region"]
    assert {int(r["evidence"]["begin"], 16) for r in regions if r["evidence"]["begin"]} == begins
    with_region = {fn for fn, evs in tm.items() if any(e[1] in ("begin", "end") for e in evs)}
    assert {r["entry"] for r in regions} == with_region
    for r in regions:
        ev = r["evidence"]
        evs = tm[r["entry"]]
        ends = {a for a, kind, _ in evs if kind == "end"}
        if ev["begin"] is None:  # the commit of a caller's transaction, from the entry
            assert ev["opened_elsewhere"] and r["address"] == r["entry"]
            assert not any(kind == "begin" for _, kind, _ in evs)
            assert {addr(x) for x in ev["ends"]} == ends
        else:
            assert {addr(x) for x in ev["ends"]} <= ends | {a for a, kind, _ in evs if kind == "tm"}
    # what is left: functions that only test (amd64: the *_avx2_rtm string functions' xtest)
    only_tests = {od.names[fn] for fn in set(tm) - with_region}
    if libc.arch == "amd64":
        assert all(n.endswith("_rtm") for n in only_tests)
        assert {mn for fn, evs in tm.items() if od.names[fn] in only_tests for _, _, mn in evs} == {"xtest"}
    if libc.arch in ("ppc64el", "s390x"):
        assert only_tests == set()

    # outline-atomic helpers: every bl/b __aarch64_* site, in the instance objdump puts it in
    calls = {
        int(c["at"], 16): (c["helper"], r["entry"])
        for r in libc.found["atomic-helper-call"]
        for c in r["evidence"]["calls"]
    }
    assert {a: h for a, (h, _) in calls.items()} == od.helper_calls
    starts = sorted(od.names)
    for a, (_, entry) in calls.items():
        assert starts[bisect.bisect_right(starts, a) - 1] == entry
