"""register_kprobe's arm64 checks (arch/arm64/kernel/probes/, Linux 6.1): the instructions
``arm_kprobe_decode_insn`` cannot step, and ``is_probed_address_atomic``'s backward scan for an
open load-exclusive, with 6.1's masks (which also match LDAR and CAS)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.context import Context
from patchscope.rules.finding import hexa
from patchscope.rules.kprobe_target import ARM64_EXCLUSIVE_MASK_FIX_SINCE, KernelImage, Probes, Refusal, refusal

A64_SPCLREG_DAIF = 0xDA11
#: ``aarch64_insn_is_steppable_hint``: the hints (insn & 0xFE0) that may be single-stepped.
A64_STEPPABLE_HINTS: tuple[int, ...] = (
    0x000,
    0x07 << 5,
    0x08 << 5,
    0x0A << 5,
    0x18 << 5,
    0x19 << 5,
    0x1A << 5,
    0x1B << 5,
)
A64_STEPPABLE_HINTS += (0x20 << 5, 0x22 << 5, 0x24 << 5, 0x26 << 5)


#: Why ``arm_kprobe_decode_insn`` rejects an instruction, by the codes :func:`a64_rejections` gives.
A64_WHY = (
    None,
    "a branch that is not simulated (pointer-authenticating)",
    "an MSR (system register write)",
    "an exception-generating instruction (svc/hvc/smc/brk/hlt)",
    "an eret",
    "an MRS of DAIF (6.1 steps every MRS but that one, its comment says the reverse)",
    "a hint not on the steppable list (wfe, yield, aut*…)",
    "a PRFM (literal)",
    "a load/store-exclusive (aarch64_insn_is_exclusive)",
)


def a64_rejections(words: np.ndarray) -> np.ndarray:
    """``arm_kprobe_decode_insn`` without the atomic scan, for many instruction words: the index
    in :data:`A64_WHY` of why each is INSN_REJECTED, 0 when it is stepped out of line or
    simulated. The clauses of ``aarch64_insn_is_steppable`` in order, then what
    ``arm_probe_decode_insn`` simulates (masks of arch/arm64/include/asm/insn.h, 6.1)."""
    w = np.asarray(words, np.uint32)

    def m(mask: int, value: int) -> np.ndarray:
        holds: np.ndarray = (w & np.uint32(mask)) == np.uint32(value)
        return holds

    adr = m(0x1F000000, 0x10000000)  # adr/adrp
    simulated = (
        m(0xFF000010, 0x54000000)  # b.cond
        | m(0x7E000000, 0x34000000)  # cbz/cbnz
        | m(0x7E000000, 0x36000000)  # tbz/tbnz
        | adr
        | m(0x7C000000, 0x14000000)  # b/bl
        | m(0xFFFFFC1F, 0xD61F0000)  # br
        | m(0xFFFFFC1F, 0xD63F0000)  # blr
        | m(0xFFFFFC1F, 0xD65F0000)  # ret
    )
    branch = (simulated & ~adr) | m(0xFFFFFBFF, 0xD65F0BFF) | m(0xFEFFF800, 0xD61F0800) | m(0xFEFFF800, 0xD63F0800)
    br_sys = np.isin((w >> 25) & 0xF, (0xA, 0xB))  # AARCH64_INSN_CLS_BR_SYS
    daif = ((w & 0x1FFFE0) >> 5) == A64_SPCLREG_DAIF
    steppable_hint = np.isin(w & 0xFE0, A64_STEPPABLE_HINTS)
    clauses: list[tuple[np.ndarray, int | np.ndarray]] = [  # (condition, code): the first that holds decides
        (m(0xBF000000, 0x18000000) | m(0xFF000000, 0x98000000), 0),  # LDR/LDRSW (literal): simulated
        (br_sys & branch, np.where(simulated, 0, 1)),
        (br_sys & (m(0xFFF8F01F, 0xD500401F) | m(0xFFF00000, 0xD5100000)), 2),
        (br_sys & m(0xFF000000, 0xD4000000), 3),
        (br_sys & (m(0xFFFFFFFF, 0xD69F03E0) | m(0xFFFFFBFF, 0xD69F0BFF)), 4),
        # `return aarch64_insn_extract_system_reg(insn) != AARCH64_INSN_SPCLREG_DAIF;`: steppable
        # unless it reads DAIF, though the comment above it promises DAIF as the one exception
        (br_sys & m(0xFFF00000, 0xD5300000), np.where(daif, 5, 0)),
        (br_sys & m(0xFFFFF01F, 0xD503201F), np.where(steppable_hint, 0, 6)),
        (br_sys | adr, 0),
        (m(0xFF000000, 0xD8000000), 7),
        (m(0x3F800000, 0x08000000), 8),
    ]
    why = np.zeros(len(w), np.int8)
    undecided = np.ones(len(w), bool)
    for cond, code_ in clauses:
        hit = undecided & cond
        why[hit] = np.broadcast_to(code_, len(w))[hit]
        undecided &= ~cond
    return why


def a64_rejected(word: int) -> str | None:
    """Why one instruction word is INSN_REJECTED, or None."""
    return A64_WHY[int(a64_rejections(np.array([word], np.uint32))[0])]


def a64_exclusive_masks(p: Probes) -> tuple[tuple[int, int], tuple[int, int]]:
    """(load_ex, store_ex) masks of ``aarch64_insn_is_load_ex``/``store_ex``: before the 2025 fix
    they ignore bit 23, so LDAR/CASA also count as load-exclusive and STLR/CAS as store-exclusive."""
    if p.since(ARM64_EXCLUSIVE_MASK_FIX_SINCE):
        return (0x3FC00000, 0x08400000), (0x3FC00000, 0x08000000)
    return (0x3F400000, 0x08400000), (0x3F400000, 0x08000000)


def is_exclusive(words: np.ndarray) -> np.ndarray:
    """``aarch64_insn_is_exclusive``: LDXR/STXR and their acquire/release/pair forms, CASP."""
    exclusive: np.ndarray = (np.asarray(words, np.uint32) & np.uint32(0x3F800000)) == np.uint32(0x08000000)
    return exclusive


#: arm64 6.1's cpucaps, numbered as arch/arm64/tools/gen-cpucaps.awk numbers
#: arch/arm64/tools/cpucaps: in the file's order from 0 (an alternative names its cap by number).
A64_CPUCAPS: tuple[str, ...] = tuple(
    [
        "ALWAYS_BOOT",
        "ALWAYS_SYSTEM",
        "BTI",
        "HAS_32BIT_EL0_DO_NOT_USE",
        "HAS_32BIT_EL1",
        "HAS_ADDRESS_AUTH",
        "HAS_ADDRESS_AUTH_ARCH_QARMA3",
        "HAS_ADDRESS_AUTH_ARCH_QARMA5",
        "HAS_ADDRESS_AUTH_IMP_DEF",
        "HAS_AMU_EXTN",
        "HAS_ARMv8_4_TTL",
        "HAS_CACHE_DIC",
        "HAS_CACHE_IDC",
        "HAS_CNP",
        "HAS_CRC32",
        "HAS_DCPODP",
        "HAS_DCPOP",
        "HAS_E0PD",
        "HAS_ECV",
        "HAS_EPAN",
        "HAS_GENERIC_AUTH",
        "HAS_GENERIC_AUTH_ARCH_QARMA3",
        "HAS_GENERIC_AUTH_ARCH_QARMA5",
        "HAS_GENERIC_AUTH_IMP_DEF",
        "HAS_IRQ_PRIO_MASKING",
        "HAS_LDAPR",
        "HAS_LSE_ATOMICS",
        "HAS_NO_FPSIMD",
        "HAS_NO_HW_PREFETCH",
        "HAS_PAN",
        "HAS_RAS_EXTN",
        "HAS_RNG",
        "HAS_SB",
        "HAS_STAGE2_FWB",
        "HAS_SYSREG_GIC_CPUIF",
        "HAS_TIDCP1",
        "HAS_TLB_RANGE",
        "HAS_VIRT_HOST_EXTN",
        "HAS_WFXT",
        "HW_DBM",
        "KVM_PROTECTED_MODE",
        "MISMATCHED_CACHE_TYPE",
        "MTE",
        "MTE_ASYMM",
        "SME",
        "SME_FA64",
        "SPECTRE_V2",
        "SPECTRE_V3A",
        "SPECTRE_V4",
        "SPECTRE_BHB",
        "SSBS",
        "SVE",
        "UNMAP_KERNEL_AT_EL0",
        "WORKAROUND_834220",
        "WORKAROUND_843419",
        "WORKAROUND_845719",
        "WORKAROUND_858921",
        "WORKAROUND_1418040",
        "WORKAROUND_1463225",
        "WORKAROUND_1508412",
        "WORKAROUND_1542419",
        "WORKAROUND_1742098",
        "WORKAROUND_1902691",
        "WORKAROUND_2038923",
        "WORKAROUND_2064142",
        "WORKAROUND_2077057",
        "WORKAROUND_2658417",
        "WORKAROUND_AMPERE_AC03_CPU_38",
        "WORKAROUND_TRBE_OVERWRITE_FILL_MODE",
        "WORKAROUND_TSB_FLUSH_FAILURE",
        "WORKAROUND_TRBE_WRITE_OUT_OF_RANGE",
        "WORKAROUND_CAVIUM_23154",
        "WORKAROUND_CAVIUM_27456",
        "WORKAROUND_CAVIUM_30115",
        "WORKAROUND_CAVIUM_TX2_219_PRFM",
        "WORKAROUND_CAVIUM_TX2_219_TVM",
        "WORKAROUND_CLEAN_CACHE",
        "WORKAROUND_DEVICE_LOAD_ACQUIRE",
        "WORKAROUND_NVIDIA_CARMEL_CNP",
        "WORKAROUND_QCOM_FALKOR_E1003",
        "WORKAROUND_REPEAT_TLBI",
        "WORKAROUND_SPECULATIVE_AT",
        "WORKAROUND_SPECULATIVE_SSBS",
        "WORKAROUND_SPECULATIVE_UNPRIV_LOAD",
        "WORKAROUND_BROKEN_AMU_CONSTCNT",
    ]
)
#: Caps every kernel has (``ARM64_ALWAYS_BOOT``, ``ARM64_ALWAYS_SYSTEM``): their sites are always patched.
A64_ALWAYS = frozenset({0, 1})
#: ``ARM64_CB_BIT``: the site is patched by a callback, not by copying a replacement.
A64_CB_BIT = 0x8000
A64_NOP_WORD = 0xD503201F

#: The caps Linux 6.1 finds on QEMU's CPU models: the "CPU features: detected" lines of the booted
#: kernel (tests/data/debian-6.1.0-56-arm64/dmesg-*), by the capability each description belongs
#: to (arch/arm64/kernel/cpufeature.c, cpu_errata.c), with the umbrella caps that print nothing
#: (HAS_ADDRESS_AUTH, HAS_GENERIC_AUTH).
A64_CPU_MODELS: dict[str, list[str]] = {
    "cortex-a57": [
        "SPECTRE_V2",
        "SPECTRE_V3A",
        "SPECTRE_V4",
        "SPECTRE_BHB",
        "WORKAROUND_834220",
        "WORKAROUND_1742098",
        "WORKAROUND_DEVICE_LOAD_ACQUIRE",
        "WORKAROUND_SPECULATIVE_AT",
        "HAS_32BIT_EL0_DO_NOT_USE",
        "HAS_32BIT_EL1",
        "HAS_CRC32",
    ],
    "max": [
        "HAS_ADDRESS_AUTH",
        "HAS_ADDRESS_AUTH_IMP_DEF",
        "HW_DBM",
        "SPECTRE_V4",
        "SPECTRE_BHB",
        "BTI",
        "HAS_32BIT_EL0_DO_NOT_USE",
        "HAS_32BIT_EL1",
        "HAS_ARMv8_4_TTL",
        "HAS_CACHE_IDC",
        "HAS_CNP",
        "HAS_CRC32",
        "HAS_DCPODP",
        "HAS_DCPOP",
        "HAS_E0PD",
        "HAS_GENERIC_AUTH",
        "HAS_GENERIC_AUTH_IMP_DEF",
        "HAS_LDAPR",
        "HAS_LSE_ATOMICS",
        "HAS_PAN",
        "HAS_RAS_EXTN",
        "HAS_RNG",
        "HAS_SB",
        "HAS_STAGE2_FWB",
        "HAS_TLB_RANGE",
        "SSBS",
        "SVE",
    ],
}


#: Short names for caps: the usual one, and /proc/cpuinfo's feature names.
A64_CAP_ALIASES = {"lse": "HAS_LSE_ATOMICS", "atomics": "HAS_LSE_ATOMICS", "pauth": "HAS_ADDRESS_AUTH"}


def a64_cpu(spec: str) -> frozenset[int]:
    """The cpucaps of ``--cpu``: a QEMU model of :data:`A64_CPU_MODELS`, or caps by name,
    comma-separated, with or without ``HAS_``, or by :data:`A64_CAP_ALIASES` (``lse,pan``).
    Raises ValueError."""
    if spec in A64_CPU_MODELS:
        return frozenset(A64_CPUCAPS.index(c) for c in A64_CPU_MODELS[spec])
    index = {c.lower(): i for i, c in enumerate(A64_CPUCAPS)}
    index.update({c.lower().removeprefix("has_"): i for i, c in enumerate(A64_CPUCAPS)})
    index.update({alias: A64_CPUCAPS.index(c) for alias, c in A64_CAP_ALIASES.items()})
    unknown = [n for n in spec.split(",") if n.strip().lower() not in index]
    if unknown:
        models = ", ".join(A64_CPU_MODELS)
        raise ValueError(
            f"unknown arm64 CPU {', '.join(unknown)!r}: a QEMU model ({models}) or cpucaps such as lse_atomics,pan"
        )
    return frozenset(index[n.strip().lower()] for n in spec.split(","))


@dataclass(frozen=True)
class A64Alternatives:
    """arm64 ``.altinstructions`` word by word, as ``__apply_alternatives`` patches them: each
    original instruction's address (sorted), the word it becomes, the cap that decides, and
    whether that word is known (``alt_cb_patch_nops`` writes NOPs; other callbacks — KVM,
    Spectre mitigations — compute theirs at boot)."""

    at: np.ndarray
    word: np.ndarray
    cap: np.ndarray
    known: np.ndarray

    @classmethod
    def of(cls, cx: Context) -> A64Alternatives:
        img = cx.shared(KernelImage)
        t = cx.table("kernel_sites")
        t = t.filter(pc.equal(t.column("kind").cast(pa.string()), pa.scalar("alternative")))
        addr, size, target, flags = (t.column(c).to_numpy() for c in ("address", "size", "target", "flags"))
        n = (size // 4).astype(np.int64)
        site = np.repeat(np.arange(len(addr)), n)
        step = (np.arange(len(site)) - np.repeat(np.cumsum(n) - n, n)).astype(np.uint64) * np.uint64(4)
        at = addr[site] + step
        callback = (flags[site] & A64_CB_BIT) != 0
        names = {int(a): img.symbol_name(int(a)) for a in np.unique(target[flags & A64_CB_BIT != 0]).tolist()}
        nops = np.array([names.get(int(a)) == "alt_cb_patch_nops" for a in target[site].tolist()], bool)
        word = np.where(callback, np.uint32(A64_NOP_WORD), img.words(np.where(callback, at, target[site] + step)))
        order = np.argsort(at, kind="stable")
        return cls(at[order], word[order], (flags[site] & 0x7FFF)[order], (~callback | nops)[order])

    def live(self, img: KernelImage, caps: frozenset[int]) -> Callable[[np.ndarray], np.ndarray]:
        """The words the kernel runs on a CPU with ``caps``: the file's, patched where a site's cap
        is among them or always set."""
        patched = np.isin(self.cap, list(caps | A64_ALWAYS)) & self.known

        def words(addrs: np.ndarray) -> np.ndarray:
            w = img.words(addrs)
            if not len(self.at) or not len(addrs):
                return w
            i = np.minimum(np.searchsorted(self.at, addrs), len(self.at) - 1)
            hit = (self.at[i] == addrs) & patched[i]
            return np.where(hit, self.word[i], w)

        return words

    def caps_within(self, lo: int, hi: int) -> tuple[list[str], bool]:
        """The caps of the sites in ``[lo, hi]`` by name, and whether a callback computes some word there."""
        i, j = np.searchsorted(self.at, lo, "left"), np.searchsorted(self.at, hi, "right")
        caps = sorted({A64_CPUCAPS[c] if c < len(A64_CPUCAPS) else str(c) for c in self.cap[i:j].tolist()})
        return caps, bool((~self.known[i:j]).any())


def a64_decide(img: KernelImage, p: Probes, words: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``arm_kprobe_decode_insn`` on the given view of the code: per probe, the :data:`A64_WHY`
    index of the instruction and the load-exclusive that opens its LL/SC window (or NO_TARGET)."""
    why = a64_rejections(words(p.at))
    opener = np.full(len(p.at), _core.NO_TARGET, np.uint64)
    rows = np.flatnonzero(p.found & ((p.at & 3) == 0) & (why == 0))
    if len(rows):
        opener[rows] = scan_back(img, p.at[rows], p.sym_start[rows], a64_exclusive_masks(p), words)
    return why, opener


def a64_arch_prepare(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """arm64 ``arch_prepare_kprobe``: a 4-byte aligned address, no exception-table fixup, an
    instruction the decoder accepts, no open load-exclusive before it (``is_probed_address_atomic``),
    all EINVAL. The instructions are those the kernel runs: alternatives patched for ``p.cpu``'s
    caps; for an unknown CPU, decided with none and with all of them, and where the two differ the
    refusal depends on the CPU (``certain=False``)."""
    if img.arch != "aarch64":
        return
    misaligned = p.found & ((p.at & 3) != 0)
    hit = img.site_holding("extable", p.at)
    fixup = (hit >= 0) & (img.sites["extable"][0][np.maximum(hit, 0)] == p.at) if "extable" in img.sites else hit > 0
    alts = img.cx.shared(A64Alternatives.of)
    views = [p.cpu] if p.cpu is not None else [frozenset(), frozenset(range(len(A64_CPUCAPS)))]
    decided = [a64_decide(img, p, alts.live(img, caps)) for caps in views]
    refused = np.logical_or.reduce([(why > 0) | (opener != _core.NO_TARGET) for why, opener in decided])
    for row in np.flatnonzero(p.found & (misaligned | fixup | refused)).tolist():
        if misaligned[row]:
            yield refusal(img, p, row, "misaligned", "EINVAL", "not 4-byte aligned (arch_prepare_kprobe)")
        elif fixup[row]:
            yield refusal(
                img,
                p,
                row,
                "exception-table",
                "EINVAL",
                "an instruction with an exception-table fixup (a user access): search_exception_tables",
            )
        else:
            yield _decoded(img, p, row, alts, views, decided)


def _decoded(
    img: KernelImage,
    p: Probes,
    row: int,
    alts: A64Alternatives,
    views: list[frozenset[int]],
    decided: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[int, Refusal]:
    """The refusal of the decoder or of the atomic scan at one row, from the first view of the
    code that refuses; uncertain where the views differ or a boot-time callback computes a word
    the decision read."""
    at = int(p.at[row])
    refused = [bool(why[row] > 0 or opener[row] != _core.NO_TARGET) for why, opener in decided]
    view = refused.index(True)
    why, opener = (int(a[row]) for a in decided[view])
    caps, computed = alts.caps_within(max(int(p.sym_start[row]), at - 4 * A64_ATOMIC_SCAN), at)
    depends = ""
    if not all(refused):
        depends = f"depends on the CPU: refused {'with' if view else 'without'} {', '.join(caps)}, accepted otherwise; "
    elif computed:
        depends = "a word it reads is computed at boot by an alternative callback: "
    cpu: dict[str, Any] = {"cpu_dependent": caps} if depends else {}
    certain = not depends
    if why:
        word = int(alts.live(img, views[view])(np.array([at], np.uint64))[0])
        text = f"{depends}{A64_WHY[why]} (arm_kprobe_decode_insn)"
        return refusal(img, p, row, "unprobeable-insn", "EINVAL", text, certain=certain, word=f"{word:08x}", **cpu)
    word = int(alts.live(img, views[view])(np.array([opener], np.uint64))[0])
    exclusive = bool(is_exclusive(np.array([word]))[0])
    what = "a load-exclusive" if exclusive else "an LDAR/LSE CAS that the 6.1 load-exclusive mask also matches"
    return refusal(
        img,
        p,
        row,
        "atomic-window",
        "EINVAL",
        f"{depends}{(at - opener) // 4} instructions after {what} at {hexa(opener)} ({word:08x}) with no "
        "store-exclusive between: inside an LL/SC sequence (is_probed_address_atomic)",
        certain=certain,
        opener=hexa(opener),
        opener_word=f"{word:08x}",
        exclusive=exclusive,
        **cpu,
    )


#: ``MAX_ATOMIC_CONTEXT_SIZE``: how far back arm64 looks for an open load-exclusive, in instructions.
A64_ATOMIC_SCAN = 32


def scan_back(
    img: KernelImage,
    at: np.ndarray,
    sym_start: np.ndarray,
    masks: tuple[tuple[int, int], tuple[int, int]],
    words: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``is_probed_address_atomic`` for many addresses at once: the address of the load-exclusive
    that opens an LL/SC sequence around each, or NO_TARGET. The scan runs from ``at - 4`` down
    to ``scan_end`` inclusive: the symbol's start when it is less than 128 bytes back, else
    ``at - 128``; a store-exclusive met first ends it."""
    offset = at - sym_start
    scan_end = np.where(offset < 4 * A64_ATOMIC_SCAN, at - (offset // 4) * 4, at - 4 * A64_ATOMIC_SCAN)
    back = at[:, None] - np.uint64(4) * np.arange(1, A64_ATOMIC_SCAN + 1, dtype=np.uint64)[None, :]
    valid = (back >= scan_end[:, None]) & (back < at[:, None])
    want = np.unique(back[valid])
    read = (words or img.words)(want)
    w = np.zeros(back.shape, np.uint32)
    w[valid] = read[np.searchsorted(want, back[valid])]
    (lm, lv), (sm, sv) = masks
    store = valid & ((w & sm) == sv)
    load = valid & ((w & lm) == lv) & ~store
    first = np.argmax(store | load, axis=1)
    hit = (store | load).any(axis=1) & load[np.arange(len(at)), first]
    return np.where(hit, back[np.arange(len(at)), first], np.uint64(_core.NO_TARGET))
