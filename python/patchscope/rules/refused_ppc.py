"""register_kprobe's powerpc checks (arch/powerpc/kernel/kprobes.c, Linux 6.1): where a probe
given as ``SYM`` lands (``kprobe_lookup_name``: the ftrace call site or the ELFv2 local entry),
``arch_within_kprobe_blacklist`` (the exception vectors before ``__head_end``), and
``arch_prepare_kprobe``: alignment, ``can_single_step`` (traps, ``sc``, the returns from
interrupt, the power-saving instructions, ``mtmsr``/``mtmsrd``) and the second word of a
prefixed instruction. Nothing looks at ``l?arx``/``st?cx.``: 6.1 accepts a probe inside a
reservation window (the trap it plants clears the reservation, so such a probe can make the
loop retry forever, but register_kprobe does not refuse it). An ftrace call site becomes an
ftrace-based kprobe (KPROBES_ON_FTRACE) and skips ``arch_prepare_kprobe``.

The kernel decides on the words it runs: feature fixups (``__ftr_fixup``, ``__mmu_ftr_fixup``)
patch alternative code in at boot by CPU feature. Where the file's word and the alternative
differ in what ``can_single_step`` says, the answer depends on the CPU (``certain=False``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from patchscope.index.context import Context
from patchscope.index.tree import elf_section
from patchscope.rules.finding import hexa
from patchscope.rules.kprobe_target import KernelImage, Probes, Refusal, refusal

#: Why ``can_single_step`` (arch/powerpc/include/asm/probes.h) says no, by the codes
#: :func:`ppc_unsteppable` gives.
PPC_WHY = (
    None,
    "a trap (tw/td/twi/tdi: BUG, WARN, or the kernel's own breakpoint)",
    "a system call (sc/scv)",
    "a return from interrupt (rfid/hrfid/urfid/rfi/rfci/rfmci/rfdi/rfscv)",
    "a power-saving instruction (stop/doze/nap/sleep/rvwinkle)",
    "a write to the MSR (mtmsr/mtmsrd)",
)

#: ``get_xop`` (bits 21..30) of opcode 19 that ``can_single_step`` refuses: RFID 18, RFMCI 38,
#: RFDI 39, RFI 50, RFCI 51, RFSCV 82, HRFID 274, URFID 306 …
PPC_XOP19_RETURNS = (18, 38, 39, 50, 51, 82, 274, 306)
#: … and STOP 370, DOZE 402, NAP 434, SLEEP 466, RVWINKLE 498.
PPC_XOP19_POWER = (370, 402, 434, 466, 498)
#: Opcode 31: TRAP (tw) 4, TRAP_64 (td) 68; MTMSR 146, MTMSRD 178.
PPC_XOP31_TRAPS = (4, 68)
PPC_XOP31_MSR = (146, 178)
#: ``OP_PREFIX``: the primary opcode of a prefixed (v3.1) instruction's first word.
PPC_OP_PREFIX = 1
#: ppc64's PAGE_SIZE as Debian builds it (CONFIG_PPC_64K_PAGES): the prefix check skips an
#: address at a page's start (``p->addr & ~PAGE_MASK``).
PPC_PAGE_SIZE = 0x10000
#: ``ppc_function_entry``: the ELFv2 global entry `addis r2,r12,…` or `lis r2,…`, then
#: `addi r2,r2,…` (``OP_RT_RA_MASK``); the local entry follows them.
PPC_RT_RA_MASK = 0xFFFF0000
PPC_ADDIS_R2_R12, PPC_LIS_R2, PPC_ADDI_R2_R2 = 0x3C4C0000, 0x3C400000, 0x38420000
#: ``kprobe_lookup_name``: the ftrace location is within the first 16 bytes (-mprofile-kernel).
PPC_FTRACE_WITHIN = 16


def ppc_unsteppable(words: np.ndarray) -> np.ndarray:
    """``can_single_step`` for many instruction words: the index in :data:`PPC_WHY` of why each
    cannot be single-stepped, 0 when it can. By primary opcode (``get_op``) and, for 19 and 31,
    the 10-bit extended opcode (``get_xop``), whatever the other bits."""
    w = np.asarray(words, np.uint32)
    op, xop = w >> np.uint32(26), (w >> np.uint32(1)) & np.uint32(0x3FF)
    why = np.zeros(len(w), np.int8)
    why[np.isin(op, (2, 3)) | ((op == 31) & np.isin(xop, PPC_XOP31_TRAPS))] = 1
    why[op == 17] = 2
    why[(op == 19) & np.isin(xop, PPC_XOP19_RETURNS)] = 3
    why[(op == 19) & np.isin(xop, PPC_XOP19_POWER)] = 4
    why[(op == 31) & np.isin(xop, PPC_XOP31_MSR)] = 5
    return why


def ppc_words(img: KernelImage, addrs: np.ndarray) -> np.ndarray:
    """The instruction words at ``addrs``, in the image's byte order."""
    w = img.words(addrs)
    return w.byteswap() if img.arch in ("ppc64", "ppc") else w


def is_elfv2(img: KernelImage) -> bool:
    """ppc64 ELFv2 (little-endian): local entry points, no function descriptors. (Big-endian
    ppc64 kernels are ELFv1, whose dot symbols kprobe_lookup_name prefers: not modelled.)"""
    return img.arch == "ppc64le"


def ppc_lookup_name(img: KernelImage, starts: np.ndarray) -> np.ndarray:
    """``kprobe_lookup_name(SYM, 0)`` for symbols starting at ``starts`` (ELFv2 with
    KPROBES_ON_FTRACE): the first ftrace record in ``[SYM, SYM + 16]`` (``ftrace_location_range``
    is inclusive), else ``ppc_function_entry``: past the global entry's TOC setup, else SYM.
    Where a probe given as ``SYM`` or ``SYM+0`` lands; ``SYM+OFFS`` with OFFS > 0 is not moved."""
    starts = np.asarray(starts, np.uint64)
    recs = img.records
    out = starts.copy()
    if not len(starts):
        return out
    if len(recs):
        i = np.minimum(np.searchsorted(recs, starts, "left"), len(recs) - 1)
        near = (recs[i] >= starts) & (recs[i] <= starts + np.uint64(PPC_FTRACE_WITHIN))
        out[near] = recs[i][near]
    else:
        near = np.zeros(len(starts), bool)
    first, second = ppc_words(img, starts), ppc_words(img, starts + np.uint64(4))
    toc = np.isin(first & np.uint32(PPC_RT_RA_MASK), (PPC_ADDIS_R2_R12, PPC_LIS_R2)) & (
        (second & np.uint32(PPC_RT_RA_MASK)) == PPC_ADDI_R2_R2
    )
    out[~near & toc] += np.uint64(8)
    return out


def ppc_head_text(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``arch_within_kprobe_blacklist``: ``[_stext, __head_end)``, the exception vectors and the
    code that must sit at fixed low addresses, refused though /sys/kernel/debug/kprobes/blacklist
    does not list it (``__kprobes_text``, the other half of the check, is in the list)."""
    if not img.arch.startswith("ppc64"):
        return
    bounds = img.cx.symbol_addresses(["_stext", "__head_end"])
    if len(bounds) != 2:
        return
    lo, hi = bounds["_stext"], bounds["__head_end"]
    for row in np.flatnonzero(p.found & (p.at >= np.uint64(lo)) & (p.at < np.uint64(hi))).tolist():
        yield refusal(
            img,
            p,
            row,
            "head-text",
            "EINVAL",
            f"in the head text [{hexa(lo)}, {hexa(hi)}): the exception vectors, which "
            "arch_within_kprobe_blacklist refuses without listing them",
            range=[hexa(lo), hexa(hi)],
        )


#: ``struct fixup_entry`` (asm/feature-fixups.h, ppc64): mask, value, then the start, end,
#: alt_start and alt_end of the section as offsets from the entry itself.
PPC_FIXUP_ENTRY = np.dtype([("mask", "<u8"), ("value", "<u8"), ("off", "<i8", (4,))])
PPC_FIXUP_SECTIONS = ("__ftr_fixup", "__mmu_ftr_fixup", "__fw_ftr_fixup")
PPC_NOP_WORD = 0x60000000


@dataclass(frozen=True)
class PpcFixups:
    """The words feature fixups may patch in, word by word (``patch_feature_section``: the
    alternative, then NOPs to the end of the section): each address (sorted), the word the
    alternative puts there, and the feature mask of its entry."""

    at: np.ndarray
    word: np.ndarray
    mask: np.ndarray

    @classmethod
    def of(cls, cx: Context) -> PpcFixups:
        img = cx.shared(KernelImage)
        # a module's entries are relocations against other sections: not read (the file's bytes hold 0)
        linked = img.arch.startswith("ppc64") and not img.module
        sections = {r["name"]: r for r in cx.table("sections").to_pylist()} if linked else {}
        at, alt_at, masks = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
        for name in (n for n in PPC_FIXUP_SECTIONS if n in sections):
            raw = elf_section(cx.path, name) or b""
            e = np.frombuffer(raw, PPC_FIXUP_ENTRY, len(raw) // PPC_FIXUP_ENTRY.itemsize)
            base = int(sections[name]["address"])
            for k, (off, mask) in enumerate(zip(e["off"].tolist(), e["mask"].tolist())):
                start, end, alt_start, alt_end = (base + k * PPC_FIXUP_ENTRY.itemsize + o for o in off)
                n, m = (end - start) // 4, min(end - start, alt_end - alt_start) // 4
                at.append(start + np.uint64(4) * np.arange(n, dtype=np.uint64))
                # past the alternative's end, NOPs: marked by a zero address, read as PPC_NOP_WORD
                alt_at.append(
                    np.r_[alt_start + np.uint64(4) * np.arange(m, dtype=np.uint64), np.zeros(n - m, np.uint64)]
                )
                masks.append(np.full(n, mask, np.uint64))
        where, alt, mask = np.concatenate(at), np.concatenate(alt_at), np.concatenate(masks)
        words = np.full(len(alt), PPC_NOP_WORD, np.uint32)
        words[alt != 0] = ppc_words(img, alt[alt != 0])
        order = np.argsort(where, kind="stable")
        return cls(where[order], words[order], mask[order])

    def patched(self, img: KernelImage, addrs: np.ndarray) -> np.ndarray:
        """The word each address holds once its section's alternative is patched in (the file's
        word where no fixup covers it)."""
        w = ppc_words(img, addrs)
        if not len(self.at) or not len(addrs):
            return w
        i = np.minimum(np.searchsorted(self.at, addrs), len(self.at) - 1)
        patched: np.ndarray = np.where(self.at[i] == addrs, self.word[i], w)
        return patched


def ppc_arch_prepare(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """powerpc ``arch_prepare_kprobe``, all EINVAL: a 4-byte aligned address, an instruction
    ``can_single_step`` accepts, and not the second word of a prefixed instruction (the word
    before it, unless the address starts a page, is not a prefix). An ftrace call site is an
    ftrace-based kprobe: ``arch_prepare_kprobe_ftrace`` checks nothing. The instruction is
    decided as the file has it and as its feature fixup would patch it: refused if either
    refuses, uncertain where they differ (the CPU's features decide which one runs)."""
    if not img.arch.startswith("ppc"):
        return
    recs = img.records
    on_record = np.isin(p.at, recs) if len(recs) else np.zeros(len(p.at), bool)
    rows = p.found & ~on_record
    misaligned = (p.at & np.uint64(3)) != 0
    fixups = img.cx.shared(PpcFixups.of)
    file_word = ppc_words(img, p.at)
    alt_word = fixups.patched(img, p.at)
    why_file, why_alt = ppc_unsteppable(file_word), ppc_unsteppable(alt_word)
    page_start = (p.at % np.uint64(PPC_PAGE_SIZE)) == 0
    prefix = (ppc_words(img, p.at - np.uint64(4)) >> np.uint32(26)) == PPC_OP_PREFIX
    suffix = ~page_start & prefix & img.arch.startswith("ppc64")
    for row in np.flatnonzero(rows & (misaligned | (why_file > 0) | (why_alt > 0) | suffix)).tolist():
        if misaligned[row]:
            yield refusal(img, p, row, "misaligned", "EINVAL", "not 4-byte aligned (arch_prepare_kprobe)")
        elif why_file[row] or why_alt[row]:
            yield _unsteppable(
                img, p, row, fixups, (int(file_word[row]), int(why_file[row])), (int(alt_word[row]), int(why_alt[row]))
            )
        else:
            at = hexa(p.at[row] - np.uint64(4))
            text = f"the second word of the prefixed instruction at {at} (arch_prepare_kprobe)"
            yield refusal(img, p, row, "prefixed-suffix", "EINVAL", text, prefix=at)


def _unsteppable(
    img: KernelImage, p: Probes, row: int, fixups: PpcFixups, file: tuple[int, int], alt: tuple[int, int]
) -> tuple[int, Refusal]:
    """The ``can_single_step`` refusal at one row, from the file's word or, when only the
    feature fixup's word refuses, from that one; uncertain when only one of them refuses."""
    (word, why), certain = (file if file[1] else alt), bool(file[1]) == bool(alt[1])
    depends, cpu = "", dict[str, Any]()
    if not certain:
        i = int(np.searchsorted(fixups.at, p.at[row]))
        mask = f"{int(fixups.mask[i]):#x}"
        when = "as the file has it" if file[1] else "once its feature fixup is patched in"
        depends = f"depends on the CPU: refused {when}, accepted otherwise (feature mask {mask}); "
        cpu = {"cpu_dependent": [f"feature mask {mask}"], "fixup_word": f"{alt[0]:08x}"}
    return refusal(
        img,
        p,
        row,
        "unprobeable-insn",
        "EINVAL",
        f"{depends}{PPC_WHY[why]} ({word:08x}): can_single_step refuses it (arch_prepare_kprobe)",
        certain=certain,
        word=f"{word:08x}",
        **cpu,
    )
