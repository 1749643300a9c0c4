"""The hazardous band's atomic rules (``llsc-window``, ``tm-region``, ``atomic-helper-call``) on
fixtures/src/atomics.c, per architecture: every window and region found, nothing else. The
expected instructions were read with each architecture's ``objdump -d``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import patchscope
from conftest import BIN
from patchscope import rules
from patchscope.index.context import Context
from patchscope.rules import atomics

CODES = ("llsc-window", "tm-region", "atomic-helper-call")


def found(path: str | Path) -> dict[str, list[dict]]:
    """The atomics rules' findings on one binary, by code, with the function name added."""
    b = patchscope.open(path)
    names = b.inventory.functions.column("name").to_pylist()
    out: dict[str, list[dict]] = {c: [] for c in CODES}
    for r in rules.run(Context(b), atomics.RULES).to_pylist():
        r["function"] = names[r["fid"]]
        r["evidence"] = json.loads(r["evidence"])
        out[r["code"]].append(r)
    return out


def mnemonics(lines: list[str]) -> list[str]:
    return [line.split(": ", 1)[1].split()[0] for line in lines]


#: Per variant, each function's LL/SC window as the mnemonics from the load through the store.
WINDOWS = {
    "x86_64": {},
    "aarch64": {
        "cas_increment": ["ldaxr", "cmp", "b.ne", "stlxr"],
        "fetch_add": ["ldaxr", "add", "stlxr"],
        "exchange": ["ldaxr", "stlxr"],
        "cas_byte": ["ldaxrb", "cmp", "b.ne", "stlxrb"],
        "spin_trylock": ["ldaxr", "cbnz", "stxr"],
        "atomic_max": ["ldaxr", "cmp", "b.ne", "stlxr"],
        "tm_increment": ["ldaxr", "add", "stlxr"],  # no TME in armv8-a: the plain atomic path
    },
    "aarch64-outline": {
        # the atomics.c functions call helpers; the helpers' LL/SC fallback is linked in from libgcc
        "__aarch64_cas4_acq": ["ldaxr", "cmp", "b.ne", "stxr"],
        "__aarch64_cas1_acq_rel": ["ldaxrb", "cmp", "b.ne", "stlxrb"],
        "__aarch64_cas4_acq_rel": ["ldaxr", "cmp", "b.ne", "stlxr"],
        "__aarch64_cas8_acq_rel": ["ldaxr", "cmp", "b.ne", "stlxr"],
        "__aarch64_ldadd4_acq_rel": ["ldaxr", "add", "stlxr"],
        "__aarch64_swp8_acq_rel": ["ldaxr", "stlxr"],
        "__aarch64_ldadd8_acq_rel": ["ldaxr", "add", "stlxr"],
    },
    "ppc64le": {
        "cas_increment": ["lwarx", "cmpw", "bne", "stwcx."],
        "fetch_add": ["ldarx", "add", "stdcx."],
        "exchange": ["ldarx", "stdcx."],
        "cas_byte": ["lbarx", "cmpw", "bne", "stbcx."],
        "spin_trylock": ["lwarx", "cmpwi", "bne", "stwcx."],
        "atomic_max": ["ldarx", "cmpd", "bne", "stdcx."],
        "tm_increment": ["lwarx", "addi", "stwcx."],  # the fallback after a failed tbegin.
    },
    "riscv64": {
        # fetch_add, exchange, spin_unlock, tm_increment: amoadd/amoswap, one instruction, no window;
        # cas_byte calls libatomic
        "cas_increment": ["lr.w.aq", "bne", "sc.w.aq"],
        "spin_trylock": ["lr.w", "c.bnez", "sc.w.aq"],
        "atomic_max": ["lr.d", "bne", "sc.d.aq"],
    },
    "elf-arches/arm": {
        # ARMv7 Thumb-2 (Debian armhf's default): ldrex/strex with dmb around; long is 4 bytes
        "cas_increment": ["ldrex", "cmp", "bne", "strex"],
        "fetch_add": ["ldrex", "adds", "strex"],
        "exchange": ["ldrex", "strex"],
        "cas_byte": ["ldrexb", "cmp", "bne", "strexb"],
        "spin_trylock": ["ldrex", "cmp", "bne", "strex"],
        "atomic_max": ["ldrex", "cmp", "bne", "strex"],
        "tm_increment": ["ldrex", "adds", "strex"],
    },
}

#: Per variant, the helper each function calls (a single call each).
HELPER_CALLS = {
    "x86_64": {},
    "aarch64": {},
    "aarch64-outline": {
        "cas_increment": "__aarch64_cas4_acq_rel",
        "fetch_add": "__aarch64_ldadd8_acq_rel",
        "exchange": "__aarch64_swp8_acq_rel",
        "cas_byte": "__aarch64_cas1_acq_rel",
        "spin_trylock": "__aarch64_cas4_acq",
        "atomic_max": "__aarch64_cas8_acq_rel",
        "tm_increment": "__aarch64_ldadd4_acq_rel",
    },
    "ppc64le": {},
    "riscv64": {"cas_byte": "__atomic_compare_exchange_1"},
    "elf-arches/arm": {},
}


@pytest.mark.parametrize("variant", list(WINDOWS))
def test_llsc_windows(variant: str) -> None:
    windows = found(BIN / variant / "corpus")["llsc-window"]
    got = {r["function"]: mnemonics(r["evidence"]["instructions"]) for r in windows}
    assert len(windows) == len(got)  # one window per function
    assert got == WINDOWS[variant]
    for r in windows:
        ev = r["evidence"]
        assert ev["terminated"]
        assert r["address"] == int(ev["low"], 16) == int(ev["instructions"][0].split(":")[0], 16)
        assert int(ev["instructions"][-1].split(":")[0], 16) < int(ev["high"], 16)
        assert ev["load"] == got[r["function"]][0] and ev["store"] == got[r["function"]][-1]
        # nothing in atomics.c is inlined around the builtins; the libgcc helpers have no DWARF
        assert ev["inline_context"] == []
        no_dwarf = r["function"].startswith("__aarch64_")
        assert ev["inline"].startswith("no DWARF" if no_dwarf else "not inside any inlined function")


@pytest.mark.parametrize("variant", ["aarch64", "ppc64le", "riscv64", "elf-arches/arm"])
def test_llsc_branch_targets_and_exits(variant: str) -> None:
    windows = {r["function"]: r["evidence"] for r in found(BIN / variant / "corpus")["llsc-window"]}
    for name, ev in windows.items():
        targets = {t["target"] for t in ev["branch_targets"]}
        # every loop retries at the load, except atomic_max on arm64/ppc/arm, which re-reads and
        # compares first (its back edge lands before the window)
        retry = not (name == "atomic_max" and variant in ("aarch64", "ppc64le", "elf-arches/arm"))
        assert targets == ({ev["low"]} if retry else set()), name
        # a compare-and-swap leaves the window when the compare fails; fetch_add/exchange never do
        cas = name in ("cas_increment", "cas_byte", "spin_trylock", "atomic_max")
        assert bool(ev["exits"]) == cas, name
    if "cas_byte" in windows:
        assert windows["cas_byte"]["access_size"] == 1
    assert windows["atomic_max"]["access_size"] == (4 if variant == "elf-arches/arm" else 8)


def test_aarch64_window_flags() -> None:
    w = {r["function"]: r["evidence"] for r in found(BIN / "aarch64/corpus")["llsc-window"]}
    assert w["cas_increment"]["acquire"] and w["cas_increment"]["release"]
    assert w["spin_trylock"]["acquire"] and not w["spin_trylock"]["release"]  # ldaxr … stxr
    assert {e["access_size"] for e in w.values()} == {1, 4, 8}


@pytest.mark.parametrize("variant", list(WINDOWS))
def test_tm_regions(variant: str) -> None:
    regions = found(BIN / variant / "corpus")["tm-region"]
    expected = {"x86_64": ["tm_increment"], "ppc64le": ["tm_increment"]}.get(variant, [])
    assert [r["function"] for r in regions] == expected
    if not regions:
        return
    (r,) = regions
    ev = r["evidence"]
    assert ev["terminated"]
    inside = mnemonics(ev["instructions"])
    if variant == "x86_64":
        assert ev["kind"] == "RTM"
        assert inside[0] == "xbegin" and mnemonics(ev["ends"]) == ["xend", "xabort"]
        assert mnemonics(ev["aborts"]) == ["xabort"]
        assert ev["fallback"] == ev["instructions"][1].split(":")[0]  # gcc's _xbegin: the next insn
        # the CPUID guard before and the lock xadd fallback after are not transactional
        assert "cpuid" not in inside and "lock" not in inside
        assert mnemonics(ev["exits_without_end"]) == ["ret"]  # the fallback's return
        assert len(ev["ranges"]) == 3
        assert ev["instance"] == "tm_increment"
        assert [c["function"] for c in ev["inline_context"]] == ["_xbegin"]
    else:
        assert ev["kind"] == "HTM"
        assert inside == ["tbegin.", "bne", "lwz", "addi", "stw", "tend."]
        assert mnemonics(ev["ends"]) == ["tend."]
        assert ev["fallback"] is None
        assert ev["inline_context"] == []


@pytest.mark.parametrize("variant", list(HELPER_CALLS))
def test_atomic_helper_calls(variant: str) -> None:
    calls = found(BIN / variant / "corpus")["atomic-helper-call"]
    got = {r["function"]: r["evidence"] for r in calls}
    assert {f: [c["helper"] for c in ev["calls"]] for f, ev in got.items()} == {
        f: [h] for f, h in HELPER_CALLS[variant].items()
    }
    for r in calls:
        (c,) = r["evidence"]["calls"]
        assert r["address"] == int(c["at"], 16)
        assert not c["tail"]
        if variant == "riscv64":
            assert c["via"] == "PLT" and c["family"] == "libatomic"
        else:
            assert c["via"] == "direct" and c["family"] == "outline"


def test_outline_helpers_are_reported_where_their_window_is() -> None:
    f = found(BIN / "aarch64-outline/corpus")
    helpers = {h for r in f["atomic-helper-call"] for h in r["evidence"]["helpers"]}
    assert helpers == set(HELPER_CALLS["aarch64-outline"].values())  # the seven, not none
    assert helpers == {r["function"] for r in f["llsc-window"]}


@pytest.mark.parametrize("variant", ["x86_64", "aarch64-outline", "riscv64"])
def test_plt_names_follow_rela_plt(variant: str) -> None:
    """Each PLT entry, named from the GOT slot its code jumps through, is the symbol of the
    matching ``.rela.plt`` entry (the linker lays both out in the same order; read with pyelftools)."""
    path = BIN / variant / "corpus"
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        rela = elf.get_section_by_name(".rela.plt")
        dynsym = elf.get_section(rela["sh_link"])
        order = [dynsym.get_symbol(r["r_info_sym"]).name for r in rela.iter_relocations()]
        plt = elf.get_section_by_name(".plt")
        start, size = plt["sh_addr"], plt["sh_size"]
    header = {"x86_64": 16, "aarch64-outline": 32, "riscv64": 32}[variant]
    assert order, "no .rela.plt entries"
    assert (size - header) // 16 == len(order)
    names = atomics.plt(Context(patchscope.open(path)))
    assert [names.name(start + header + 16 * i) for i in range(len(order))] == order


def test_every_atomic_code_runs_in_the_full_rule_set() -> None:
    b = patchscope.open(BIN / "ppc64le/corpus")
    bands = rules.findings(b).bands
    band = dict(zip(bands.column("name").to_pylist(), bands.column("band").to_pylist()))
    for name in WINDOWS["ppc64le"]:
        assert band[name] == "hazardous", name
    assert band["spin_unlock"] == "safe"  # a plain release store


# -- small objects compiled here: inline context and an unmatched load-exclusive ----------------

GCC_A64 = shutil.which("aarch64-linux-gnu-gcc")

INLINED = r"""
static inline __attribute__((always_inline)) int atomic_try_cmpxchg(int *p, int *old, int new)
{
    return __atomic_compare_exchange_n(p, old, new, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static inline __attribute__((always_inline)) void atomic_inc(int *p)
{
    int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!atomic_try_cmpxchg(p, &old, old + 1))
        ;
}

__attribute__((noinline)) int foo(int *p)
{
    int old = *p;
    while (!atomic_try_cmpxchg(p, &old, old + 1))
        ;
    return old;
}

__attribute__((noinline)) void bar(int *p)
{
    atomic_inc(p);
}

__attribute__((noinline)) void wait_for_change(unsigned int *p, unsigned int old)
{
    unsigned int tmp;
    asm volatile("sevl\n wfe\n ldxr %w0, [%1]\n eor %w0, %w0, %w2\n cbnz %w0, 1f\n wfe\n1:"
                 : "=&r"(tmp) : "r"(p), "r"(old) : "memory");
}

__attribute__((noinline)) unsigned long pair_swap(unsigned __int128 *p, unsigned long a, unsigned long b)
{
    unsigned long lo, hi, st;
    asm volatile("1: ldaxp %0, %1, [%3]\n stlxp %w2, %4, %5, [%3]\n cbnz %w2, 1b"
                 : "=&r"(lo), "=&r"(hi), "=&r"(st) : "r"(p), "r"(a), "r"(b) : "memory");
    return lo ^ hi;
}
"""


@pytest.fixture(scope="module")
def a64_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if GCC_A64 is None:
        pytest.skip("aarch64-linux-gnu-gcc absent")
    d = tmp_path_factory.mktemp("a64")
    (d / "inl.c").write_text(INLINED)
    cmd = [GCC_A64, "-O2", "-g", "-march=armv8-a", "-mno-outline-atomics", "-c", "inl.c", "-o", "inl.o"]
    subprocess.run(cmd, cwd=d, check=True)
    return d / "inl.o"


def test_inline_context_of_a_window(a64_object: Path) -> None:
    w = {r["function"]: r["evidence"] for r in found(a64_object)["llsc-window"]}
    assert w["foo"]["instance"] == "foo"
    assert [c["function"] for c in w["foo"]["inline_context"]] == ["atomic_try_cmpxchg"]
    assert w["bar"]["instance"] == "bar"
    assert [c["function"] for c in w["bar"]["inline_context"]] == ["atomic_try_cmpxchg", "atomic_inc"]
    lines = INLINED.splitlines()
    in_inc = next(n for n, t in enumerate(lines, 1) if "while (!atomic_try_cmpxchg" in t)  # atomic_inc's
    in_bar = next(n for n, t in enumerate(lines, 1) if "atomic_inc(p);" in t)
    assert [c["call_line"] for c in w["bar"]["inline_context"]] == [in_inc, in_bar]


def test_unterminated_and_pair_windows(a64_object: Path) -> None:
    w = {r["function"]: r for r in found(a64_object)["llsc-window"]}
    wait = w["wait_for_change"]["evidence"]
    assert not wait["terminated"] and wait["store"] is None
    assert mnemonics(wait["instructions"]) == ["ldxr", "eor", "cbnz", "wfe", "ret"]  # stops at the return
    assert "is_probed_address_atomic" in w["wait_for_change"]["message"]
    pair = w["pair_swap"]["evidence"]
    assert pair["terminated"] and pair["pair"] and pair["access_size"] == 16
    assert mnemonics(pair["instructions"]) == ["ldaxp", "stlxp"]


# -- libatomic reached three more ways: ppc64 PLT call stubs, x86 -fno-plt, x86 IBT .plt.sec ----

BIG_STORE = r"""
struct big { long a, b, c; };
__attribute__((noinline)) void store_big(struct big *p, struct big v) { __atomic_store(p, &v, __ATOMIC_SEQ_CST); }
int main(void) { static struct big x; struct big v = {1, 2, 3}; store_big(&x, v); return 0; }
"""


@pytest.mark.parametrize(
    ("gcc", "flags", "via", "target_section"),
    [
        ("powerpc64le-linux-gnu-gcc", [], "PLT (call stub)", ".text"),
        ("gcc", ["-fno-plt"], "GOT slot (-fno-plt)", ".got"),
        ("gcc", ["-fcf-protection=full", "-Wl,-z,ibtplt"], "PLT", ".plt.sec"),
    ],
)
def test_libatomic_call_forms(tmp_path: Path, gcc: str, flags: list[str], via: str, target_section: str) -> None:
    if shutil.which(gcc) is None:
        pytest.skip(f"{gcc} absent")
    (tmp_path / "big.c").write_text(BIG_STORE)
    r = subprocess.run([gcc, "-O2", "-g", *flags, "big.c", "-o", "big", "-latomic"], cwd=tmp_path, capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot link against libatomic with {gcc}: {r.stderr.decode()[-200:]}")
    (call,) = found(tmp_path / "big")["atomic-helper-call"]
    assert call["function"] == "store_big"
    (c,) = call["evidence"]["calls"]
    assert (c["helper"], c["via"], c["family"]) == ("__atomic_store", via, "libatomic")
    cx = Context(patchscope.open(tmp_path / "big"))
    assert cx.section_at(int(c["target"], 16))[0] == target_section


WIDE_COUNTER = r"""
struct wide { unsigned lo, hi; };
__attribute__((noinline)) unsigned long long __atomic_wide_counter_load_relaxed(struct wide *c)
{ return c->lo | (unsigned long long)c->hi << 32; }
__attribute__((noinline)) unsigned long long reader(struct wide *c)
{ return __atomic_wide_counter_load_relaxed(c) + 1; }
int main(void) { static struct wide c; return (int)reader(&c); }
"""


def test_only_libatomic_names_are_helpers(tmp_path: Path) -> None:
    # glibc's own __atomic_wide_counter_* (32-bit targets) share libatomic's prefix: plain calls
    (tmp_path / "wide.c").write_text(WIDE_COUNTER)
    subprocess.run(["gcc", "-O2", "-g", "wide.c", "-o", "wide"], cwd=tmp_path, check=True)
    assert found(tmp_path / "wide")["atomic-helper-call"] == []
    named = {n: atomics._helper(n) for n in ("__atomic_is_lock_free", "__atomic_fetch_nand_2@LIBATOMIC_1.0")}
    assert named == {"__atomic_is_lock_free": None, "__atomic_fetch_nand_2@LIBATOMIC_1.0": "__atomic_fetch_nand_2"}
