"""Machine-code facts (``_core.Binary.code_facts`` / ``.instructions``) against objdump.

For each fixture build, every out-of-line instance's ranges (from the inventory) are decoded
by the core, and the same addresses are read from the cross binutils' ``objdump -d``, parsed
here on its own terms (mnemonics and the ``<symbol>`` targets it prints). Per function, the
returns, direct and indirect tail jumps, jumps to the entry, direct and indirect calls,
LL/SC, TM, trap and landing-pad instructions must be the same sets; per range, the
instruction count and every instruction boundary must agree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from functools import cache

import numpy as np
import pytest

import patchscope
from conftest import BIN, expected
from patchscope import _core
from patchscope.index.tables import Columns

OBJDUMP = {
    "x86_64": "objdump",
    "aarch64": "aarch64-linux-gnu-objdump",
    "aarch64-outline": "aarch64-linux-gnu-objdump",
    "ppc64le": "powerpc64le-linux-gnu-objdump",
    "riscv64": "riscv64-linux-gnu-objdump",
}

# The core's kind numbering (patchscope_core::code::kind).
RETURN, TAIL_DIRECT, TAIL_INDIRECT, CALL_DIRECT, CALL_INDIRECT, TO_ENTRY = 1, 2, 3, 4, 5, 6
LL, SC, LSE, ORDERED = 7, 8, 9, 10
TM_BEGIN, TM_END, TM_ABORT, TM_TEST, TM_OTHER, HLE, TRAP, ENDBR = 11, 12, 13, 14, 15, 16, 17, 18
LOCAL_ENTRY, ENTRY_NOPS = 19, 20
INSN_JUMP, INSN_JUMP_INDIRECT, INSN_ERROR = 33, 34, 255
CONDITIONAL = 1
NO_TARGET = 2**64 - 1

#: Kinds whose (address, target) pairs are compared; the rest by address only.
WITH_TARGET = {TAIL_DIRECT, TO_ENTRY, CALL_DIRECT, TM_BEGIN}
COMPARED = {RETURN, TAIL_DIRECT, TAIL_INDIRECT, CALL_DIRECT, CALL_INDIRECT, TO_ENTRY, LL, SC, LSE, ORDERED}
COMPARED |= {TM_BEGIN, TM_END, TM_ABORT, TM_TEST, TM_OTHER, TRAP, ENDBR}

LINE = re.compile(r"^\s*([0-9a-f]+):\t(\S+)\s*(.*)$")
TARGET = re.compile(r"\b([0-9a-f]+) <[^>]*>")


@cache
def listing(variant: str) -> dict[int, tuple[str, str]]:
    """address -> (mnemonic, operands) of every instruction objdump shows in the file."""
    tool = OBJDUMP[variant]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} missing (apt-get install binutils-*-linux-gnu)")
    out = subprocess.run(
        [tool, "-d", "-z", "-w", "--no-show-raw-insn", str(BIN / variant / "corpus")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    insns = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            insns[int(m.group(1), 16)] = (m.group(2), m.group(3))
    return insns


def target_of(ops: str) -> int | None:
    found = TARGET.findall(ops)
    return int(found[-1], 16) if found else None


# ---- objdump's mnemonics, read independently per architecture --------------------------------
# Each returns (kind, target, conditional) with kind one of the core's, or None.

X86_PREFIXES = {"notrack", "bnd", "lock", "rep", "repz", "repnz", "data16", "cs", "ds", "xacquire", "xrelease"}


def x86(mn: str, ops: str):
    toks = f"{mn} {ops}".split()
    while len(toks) > 1 and toks[0] in X86_PREFIXES:
        toks.pop(0)
    m, rest = toks[0], " ".join(toks[1:])
    if m in ("ret", "retq"):
        return RETURN, None, False
    if m.startswith("j") or m.startswith("loop"):
        if rest.startswith("*"):
            return TAIL_INDIRECT, None, False
        return "jump", target_of(rest), m != "jmp"
    if m == "call":
        return (CALL_INDIRECT, None, False) if rest.startswith("*") else (CALL_DIRECT, target_of(rest), False)
    tm = {"xbegin": TM_BEGIN, "xend": TM_END, "xabort": TM_ABORT, "xtest": TM_TEST}
    if m in tm:
        return tm[m], target_of(rest) if m == "xbegin" else None, False
    if m in ("ud2", "ud1", "ud0", "int3", "int", "int1", "icebp"):
        return TRAP, None, False
    if m in ("endbr64", "endbr32"):
        return ENDBR, None, False
    return None


A64_LSE = re.compile(
    r"(casp?|swp|ld(add|clr|eor|set|[su]max|[su]min)|st(add|clr|eor|set|[su]max|[su]min))(a|al|l)?[bh]?"
)


def aarch64(m: str, ops: str):
    if m in ("ret", "retaa", "retab"):
        return RETURN, None, False
    if m == "b" or m.startswith("b.") or m.startswith("bc.") or m in ("cbz", "cbnz", "tbz", "tbnz"):
        return "jump", target_of(ops), m not in ("b", "b.al")
    if m == "bl":
        return CALL_DIRECT, target_of(ops), False
    if m in ("br", "braa", "brab", "braaz", "brabz"):
        return TAIL_INDIRECT, None, False
    if m in ("blr", "blraa", "blrab", "blraaz", "blrabz"):
        return CALL_INDIRECT, None, False
    if re.fullmatch(r"ld(a)?x[rp][bh]?", m):
        return LL, None, False
    if re.fullmatch(r"st(l)?x[rp][bh]?", m):
        return SC, None, False
    if re.fullmatch(r"(ldar|stlr|ldlar|stllr)[bh]?", m):
        return ORDERED, None, False
    if A64_LSE.fullmatch(m):
        return LSE, None, False
    tm = {"tstart": TM_BEGIN, "tcommit": TM_END, "tcancel": TM_ABORT, "ttest": TM_TEST}
    if m in tm:
        return tm[m], None, False
    if m in ("brk", "udf", "hlt"):
        return TRAP, None, False
    if m == "bti":
        return ENDBR, None, False
    return None


PPC_CONDS = {
    "lt",
    "le",
    "eq",
    "ge",
    "gt",
    "nl",
    "ne",
    "ng",
    "so",
    "ns",
    "un",
    "nu",
    "dnz",
    "dz",
    "dnzt",
    "dnzf",
    "dzt",
    "dzf",
}


def ppc(mn: str, ops: str):
    m = mn.rstrip("+-")
    if m.startswith("b"):
        if m.endswith("lrl") or m.endswith("ctrl") or m.endswith("tarl"):
            return CALL_INDIRECT, None, False
        if m.endswith("lr"):
            return RETURN, None, False
        if m.endswith("ctr") or m.endswith("tar"):
            return TAIL_INDIRECT, None, False
        t = target_of(ops)
        if t is None:
            return None
        base = {"ba": "b", "bla": "bl", "bca": "bc", "bcla": "bcl"}.get(m, m)  # absolute forms
        link = base in ("bl", "bcl") or (base.endswith("l") and base[1:-1] in PPC_CONDS)
        if link:
            return CALL_DIRECT, t, False
        return "jump", t, base not in ("b",)
    if re.fullmatch(r"l[bhwdq]arx", m):
        return LL, None, False
    if re.fullmatch(r"st[bhwdq]cx\.", m):
        return SC, None, False
    tm = {"tbegin.": TM_BEGIN, "tend.": TM_END, "tendall.": TM_END, "tcheck": TM_TEST}
    if m in tm:
        return tm[m], None, False
    if m.startswith("tabort"):
        return TM_ABORT, None, False
    if m in ("tsuspend.", "tresume.", "tsr.", "treclaim.", "trechkpt."):
        return TM_OTHER, None, False
    if m == "trap" or m.startswith("tw") or m.startswith("td"):
        return TRAP, None, False
    return None


RV_BRANCHES = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez", "blez", "bgez", "bltz", "bgtz"}
RV_BRANCHES |= {"bgt", "ble", "bgtu", "bleu"}


def riscv(m: str, ops: str):
    t = target_of(ops)
    if m == "ret":
        return RETURN, None, False
    if m == "jr":
        if t is not None:
            return "jump", t, False  # auipc+jr: a far `tail`
        # jr t0 returns from a t0-linked call (the ISA's return-address-stack hint).
        return (RETURN, None, False) if ops.strip() in ("ra", "t0") else (TAIL_INDIRECT, None, False)
    if m == "jalr":
        return (CALL_DIRECT, t, False) if t is not None else (CALL_INDIRECT, None, False)
    if m in ("jal", "call"):
        return CALL_DIRECT, t, False
    if m in ("j", "tail"):
        return "jump", t, False
    if m in RV_BRANCHES:
        return "jump", t, True
    if m.startswith("lr."):
        return LL, None, False
    if m.startswith("sc."):
        return SC, None, False
    if m.startswith("amo"):
        return LSE, None, False
    if m in ("ebreak", "c.ebreak", "unimp", "c.unimp"):
        return TRAP, None, False
    return None


READ = {"x86_64": x86, "aarch64": aarch64, "aarch64-outline": aarch64, "ppc64le": ppc, "riscv64": riscv}


# ---- the core's side ---------------------------------------------------------------------------


class Case:
    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.path = BIN / variant / "corpus"
        b = patchscope.open(self.path)
        inst = b.inventory.instances
        names = b.symbols.column("name").to_pylist()
        self.names = [names[s[0]] if s else "?" for s in inst.column("symbols").to_pylist()]
        self.ranges = [[tuple(r) for r in rs] for rs in inst.column("ranges").to_pylist()]
        ids, lows, highs = [], [], []
        for i, rs in enumerate(self.ranges):
            for lo, hi in rs:
                ids.append(i)
                lows.append(lo)
                highs.append(hi)
        u64 = lambda v: np.asarray(v, dtype=np.uint64).tobytes()  # noqa: E731
        self.cols = Columns.from_core(_core.Binary(str(self.path)).code_facts(u64(ids), u64(lows), u64(highs)))
        self.input = (ids, lows, highs)
        ev = self.cols.table("code_events")
        self.events = ev.to_pylist()
        self.ranges_out = self.cols.table("code_ranges").to_pylist()
        localentry = {s["address"]: s.get("localentry", 0) for s in expected(variant)["func_symbols"]}
        self.localentry = localentry

    def core_events(self, fid: int) -> set:
        out = set()
        for e in self.events:
            if e["function_id"] != fid or e["kind"] not in COMPARED:
                continue
            t = e["target"] if e["kind"] in WITH_TARGET and e["target"] != NO_TARGET else None
            cond = bool(e["extra"] & CONDITIONAL) if e["kind"] in (TAIL_DIRECT, TO_ENTRY) else False
            out.add((e["kind"], e["address"], t, cond))
        return out

    def objdump_events(self, fid: int) -> set:
        read, insns = READ[self.variant], listing(self.variant)
        rs = [r for r in self.ranges[fid] if r[1] > r[0]]
        if not rs:
            return set()
        entry = rs[0][0]
        entries = {entry}
        if self.localentry.get(entry) == 8:
            entries.add(entry + 8)
        out = set()
        for lo, hi in rs:
            for a in range(lo, hi):
                if a not in insns:
                    continue
                got = read(*insns[a])
                if got is None:
                    continue
                kind, t, cond = got
                if kind == "jump":
                    if t in entries:
                        out.add((TO_ENTRY, a, t, cond))
                    elif not any(l2 <= t < h2 for l2, h2 in rs):
                        out.add((TAIL_DIRECT, a, t, cond))
                    continue
                out.add((kind, a, t if kind in WITH_TARGET else None, False))
        return out


@cache
def case(variant: str) -> Case:
    return Case(variant)


VARIANTS = list(OBJDUMP)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ranges_decode_like_objdump(variant: str) -> None:
    c = case(variant)
    insns = listing(variant)
    addrs = np.array(sorted(insns), dtype=np.uint64)
    assert len(c.ranges_out) == len(c.input[0]) > 40
    for row, fid, lo, hi in zip(c.ranges_out, *c.input):
        assert (row["function_id"], row["low"], row["high"]) == (fid, lo, hi)
        assert row["decode_errors"] == 0 and row["status"] == 0, (c.names[fid], row)
        assert row["first_bad_offset"] == NO_TARGET
        n = int(np.searchsorted(addrs, hi) - np.searchsorted(addrs, lo))
        assert row["insn_count"] == n, (c.names[fid], hex(lo), row["insn_count"], n)


@pytest.mark.parametrize("variant", VARIANTS)
def test_events_match_objdump(variant: str) -> None:
    c = case(variant)
    totals: dict[int, int] = defaultdict(int)
    for fid in range(len(c.ranges)):
        mine, theirs = c.core_events(fid), c.objdump_events(fid)
        missing, extra = sorted(theirs - mine), sorted(mine - theirs)
        assert not missing and not extra, (c.names[fid], "missing", missing, "extra", extra)
        for k, *_ in mine:
            totals[k] += 1
    # Nothing above may pass vacuously: every build has returns, calls and tail calls.
    assert totals[RETURN] > 40 and totals[CALL_DIRECT] > 40, dict(totals)
    assert totals[TAIL_DIRECT] >= 6, dict(totals)
    # ppc64le has no indirect tail call (the TOC is restored after `bctrl`).
    assert totals[TAIL_INDIRECT] >= (0 if variant == "ppc64le" else 1), dict(totals)
    if variant == "x86_64":
        assert (totals[TM_BEGIN], totals[TM_END], totals[TM_ABORT]) == (1, 1, 1)
    least = {"aarch64": 7, "ppc64le": 7, "riscv64": 3}.get(variant, 0)
    assert totals[LL] >= least and totals[SC] >= least, dict(totals)
    if variant == "aarch64-outline":
        assert totals[LSE] >= 5 and totals[LL] >= 5, dict(totals)
    if variant == "ppc64le":
        assert (totals[TM_BEGIN], totals[TM_END]) == (1, 1)


def by_name(c: Case, name: str) -> int:
    return c.names.index(name)


def sym_address(variant: str, name: str) -> int:
    return next(s["address"] for s in expected(variant)["func_symbols"] if s["name"] == name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_cases(variant: str) -> None:
    """The README's table of cases, checked by name."""
    c = case(variant)
    ev = lambda name: {(e["kind"], e["target"]) for e in c.events if e["function_id"] == by_name(c, name)}  # noqa: E731
    real = sym_address(variant, "real_impl")
    assert (TAIL_DIRECT, real) in ev("wrapper_tail")
    assert RETURN not in {k for k, _ in ev("wrapper_tail")}
    assert (CALL_DIRECT, real) in ev("wrapper_notail")
    assert {t for k, t in ev("dispatch_tail") if k == TAIL_DIRECT} >= {
        sym_address(variant, "op_add"),
        sym_address(variant, "op_sub"),
    }
    indirect = {k for k, _ in ev("wrapper_indirect")}
    # ppc64le keeps the indirect call (TOC restore after it): no tail call there.
    assert (CALL_INDIRECT in indirect) if variant == "ppc64le" else (TAIL_INDIRECT in indirect)
    if variant == "aarch64-outline":
        helpers = {sym_address(variant, n) for n in ("__aarch64_cas4_acq_rel", "__aarch64_ldadd8_acq_rel")}
        assert helpers <= {t for k, t in ev("cas_increment") | ev("fetch_add") if k == CALL_DIRECT}


def test_ppc64le_local_entries() -> None:
    """Every instance whose entry symbol has an ELFv2 local entry (readelf's oracle) has a
    LOCAL_ENTRY event with its offset, and no other instance has one."""
    c = case("ppc64le")
    want = {rs[0][0] for rs in c.ranges if rs and rs[0][1] > rs[0][0] and c.localentry.get(rs[0][0]) == 8}
    got = {e["address"] for e in c.events if e["kind"] == LOCAL_ENTRY}
    assert got == want and len(got) > 20
    assert all(e["extra"] == 8 and e["target"] == e["address"] + 8 for e in c.events if e["kind"] == LOCAL_ENTRY)


@pytest.mark.parametrize("variant", VARIANTS)
def test_instructions_are_objdump_boundaries(variant: str) -> None:
    c = case(variant)
    insns = listing(variant)
    read = READ[variant]
    checked = 0
    for rs in c.ranges:
        for lo, hi in rs:
            if hi <= lo:
                continue
            t = Columns.from_core(_core.Binary(str(c.path)).instructions(lo, hi)).table("insns")
            addrs = t.column("address").to_pylist()
            assert addrs == [a for a in range(lo, hi) if a in insns], hex(lo)
            kinds = t.column("kind").to_pylist()
            assert INSN_ERROR not in kinds
            texts = t.column("text").to_pylist()
            assert all(texts), hex(lo)
            # The context-free kinds agree with objdump's mnemonics.
            for a, k, text in zip(addrs, kinds, texts):
                got = read(*insns[a])
                if got is None:
                    continue
                want = {"jump": INSN_JUMP, TAIL_INDIRECT: INSN_JUMP_INDIRECT}.get(got[0], got[0])
                assert k == want, (hex(a), insns[a], k, text)
                if variant == "x86_64":
                    assert text.split()[0] == insns[a][0], (text, insns[a])
                checked += 1
    assert checked > 200


def test_bad_input() -> None:
    p = str(BIN / "x86_64" / "corpus")
    with pytest.raises(_core.CoreError, match="differ in length"):
        _core.Binary(p).code_facts([1, 2], [0], [1])
    with pytest.raises(_core.CoreError, match="whole number"):
        _core.Binary(p).code_facts(b"\0" * 7, b"", b"")
    with pytest.raises(_core.CoreError, match="mips"):
        _core.Binary(str(BIN / "elf-arches" / "mips" / "corpus")).code_facts([0], [0], [4])
    with pytest.raises(_core.CoreError, match="no section"):
        _core.Binary(p).instructions(0xDEAD0000, 0xDEAD0010)
    # Lists work as well as bytes; a range in no section is reported, not fatal.
    out = Columns.from_core(_core.Binary(p).code_facts([3], [0xDEAD0000], [0xDEAD0010]))
    assert out.table("code_ranges").column("status").to_pylist() == [1]


# ---- Debian's 6.1.0-56 amd64 vmlinux, when present -------------------------------------------


@pytest.fixture(scope="module")
def kernel_facts(vmlinux):
    b = patchscope.open(vmlinux)
    inst = b.inventory.instances
    rg = inst.column("ranges").combine_chunks()
    per = np.diff(rg.offsets.to_numpy())
    flat = rg.values.flatten().to_numpy()
    ids = np.repeat(np.arange(len(per), dtype=np.uint64), per)
    lows, highs = flat[0::2].astype(np.uint64), flat[1::2].astype(np.uint64)
    cols = Columns.from_core(_core.Binary(str(vmlinux)).code_facts(ids.tobytes(), lows.tobytes(), highs.tobytes()))
    return vmlinux, b, (ids, lows, highs), cols


def test_vmlinux_every_dwarf_tail_call_is_found(kernel_facts) -> None:
    """Every call site the DWARF marks DW_AT_call_tail_call ends where a tail jump (or, for
    self recursion, a jump to the entry) ends — or one byte later, where the kernel's
    straight-line-speculation `int3` follows a `jmp __x86_indirect_thunk_*`."""
    _, b, _, cols = kernel_facts
    ev = cols.raw["code_events"]
    kind = ev.column("kind").to_numpy()
    end = ev.column("address").to_numpy() + ev.column("size").to_numpy().astype(np.uint64)
    exits = set(end[np.isin(kind, [TAIL_DIRECT, TAIL_INDIRECT, TO_ENTRY])].tolist())
    int3_after_exit = {e + 1 for e in exits} & set(end[kind == TRAP].tolist())
    cs = b.call_sites
    tail = cs.column("tail").to_numpy().astype(bool)
    ret = cs.column("return_pc").to_numpy()[tail].tolist()
    missing = [hex(r) for r in ret if r not in exits and r not in int3_after_exit]
    assert len(ret) == 17_041 and not missing, missing[:20]
    # More exits than the DWARF knows: those without call-site DWARF (assembly, thunks).
    assert len(exits) > len(ret)


def test_vmlinux_facts(kernel_facts) -> None:
    path, b, (_, lows, highs), cols = kernel_facts
    rg = cols.raw["code_ranges"]
    assert rg.num_rows == len(lows) > 40_000
    assert rg.column("decode_errors").to_numpy().sum() == 0
    assert not rg.column("status").to_numpy().any()
    ev = cols.raw["code_events"]
    kind, extra = ev.column("kind").to_numpy(), ev.column("extra").to_numpy()
    target = ev.column("target").to_numpy()
    sy = b.symbols
    names = sy.column("name").to_pylist()
    addr = sy.column("address").to_numpy()
    thunk = addr[names.index("__x86_return_thunk")]
    # CONFIG_RETHUNK: nearly every return is a jump to the return thunk.
    rets = kind == RETURN
    assert (target[rets] == thunk).sum() == ((extra[rets] & 2) != 0).sum() > 0.99 * rets.sum()
    fentry = addr[names.index("__fentry__")]
    assert ((kind == CALL_DIRECT) & (target == fentry)).sum() > 30_000
    # Instruction boundaries of a sample of functions agree with objdump.
    step = max(1, len(lows) // 25)
    for i in range(0, len(lows), step):
        lo, hi = int(lows[i]), int(highs[i])
        out = subprocess.run(
            ["objdump", "-d", "-z", "--no-show-raw-insn", f"--start-address={lo}", f"--stop-address={hi}", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        want = [int(m.group(1), 16) for m in map(LINE.match, out.splitlines()) if m]
        t = Columns.from_core(_core.Binary(str(path)).instructions(lo, hi)).table("insns")
        assert t.column("address").to_pylist() == want, hex(lo)


def test_s390x_decodes_like_llvm_objdump() -> None:
    """s390x: the fixture's .text walks to llvm-objdump's instruction boundaries (lengths from
    the first byte); its calls are brasl/basr, its returns `br %r14` or GCC's epilogue
    through another register (`lg %r4,…(%r15); lmg …; br %r4`)."""
    tool = shutil.which("llvm-objdump")
    if tool is None:
        pytest.skip("llvm-objdump absent")
    path = BIN / "elf-arches" / "s390x" / "corpus"
    out = subprocess.run(
        [tool, "-d", "-j", ".text", "--no-show-raw-insn", str(path)], capture_output=True, text=True, check=True
    ).stdout
    theirs = {}
    for line in out.splitlines():
        head, _, rest = line.partition(":")
        if rest.startswith("\t") or rest.startswith(" "):
            try:
                theirs[int(head.strip(), 16)] = rest.split()[0] if rest.split() else ""
            except ValueError:
                continue
    lo, hi = min(theirs), max(theirs) + 6
    t = Columns.from_core(_core.Binary(str(path)).instructions(lo, hi)).table("insns")
    ours = dict(zip(t.column("address").to_pylist(), t.column("kind").to_pylist()))
    assert [a for a in ours if a < max(theirs) + 1] == sorted(theirs)
    returns = {theirs[a] for a, k in ours.items() if k == RETURN}
    assert "br" in returns and all(re.fullmatch(r"b[a-z]*r", m) for m in returns), returns  # ber, bler: conditional
    assert {theirs[a] for a, k in ours.items() if k == CALL_DIRECT} == {"brasl"}
    assert sum(k == RETURN for k in ours.values()) >= 20
