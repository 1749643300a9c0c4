"""Benchmark and cross-check: ``patchscope list`` beside SystemTap's ``stap -L`` on the same
pattern, on the fixture, on glibc (libc6-dbg) and on a vmlinux.

    python bench/list.py [--runs N] [--only corpus,glibc,vmlinux] [--vmlinux PATH]
                         [--stap-kernel-timeout S] [--no-stap-on-vmlinux]
    python bench/list.py --compare glibc|corpus|vmlinux [--modes function,call,inline] [--save DIR]

Timing: each command runs as its own process (wall time, peak RSS); patchscope with a warm index
(one untimed run first fills a private cache), both tools ``--runs`` times, the best run kept
(the machine is shared: the median is printed too). stap needs a kernel build dir even to list
user-space probes; ``bench/stap_stub.sh`` makes a stub one (with ``-k VMLINUX`` it also holds the
vmlinux and its System.map, which is how ``stap -L 'kernel.function("*")'`` runs here). Without
``stap`` the peer columns say so and patchscope is still timed.

``--compare``: the ``function("*")``, ``.call`` and ``.inline`` listings of both tools, every line
that differs sorted into one kind (docs/list-vs-stap.md explains each and who is right), with
counts and examples; no kind may be UNEXPLAINED. ``--save DIR`` keeps the listings and reuses
them on the next run (stap takes 5-6 min per listing of a vmlinux).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common import ROOT, Run, run, table, vmlinux

CORPUS = ROOT / "fixtures" / "bin" / "x86_64" / "corpus"
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
STUB = ROOT / "bench" / "stap_stub.sh"


# -- the two tools -------------------------------------------------------------------------------


def stap_stub(vmlinux_path: Path | None = None) -> Path | None:
    """A stub build dir for ``stap -r`` (None when stap is not installed)."""
    if shutil.which("stap") is None:
        return None
    argv = [str(STUB), *(["-k", str(vmlinux_path)] if vmlinux_path else [])]
    return Path(subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip())


def glibc() -> tuple[Path, Path, dict[str, str]] | None:
    """libc.so.6, its debug file and the environment stap needs to find that file: the installed
    libc with libc6-dbg, else the copy ``scripts/fetch-libc-dbg amd64`` keeps in the cache."""
    bid = _build_id(LIBC) if LIBC.is_file() else None
    debug = Path(f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug") if bid else None
    if debug and debug.is_file():
        return LIBC, debug, {}
    try:
        out = subprocess.run(
            [str(ROOT / "scripts" / "fetch-libc-dbg"), "amd64"], check=True, capture_output=True, text=True
        ).stdout.split()
    except (subprocess.CalledProcessError, OSError):
        return None
    libc, debug = Path(out[1]), Path(out[2])
    # elfutils looks for <root>/usr/lib/debug/.build-id/xx/yyyy.debug under each path entry
    root = debug.parents[3]
    return libc, debug, {"SYSTEMTAP_DEBUGINFO_PATH": f"+:.debug:{root}"}


def _build_id(path: Path) -> str | None:
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def patchscope_argv(binary: Path, pattern: str, debug: Path | None = None, verbose: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "patchscope.cli.main", "list", str(binary), pattern]
    return argv + (["--debug-file", str(debug)] if debug else []) + (["-v"] if verbose else [])


def stap_argv(stub: Path, pattern: str) -> list[str]:
    return ["stap", "-r", str(stub), "-L", pattern]


def listing(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if p.returncode not in (0, 1):  # 1: nothing matched
        raise SystemExit(f"{argv[:4]}…: exit status {p.returncode}: {p.stderr.strip()[:500]}")
    return p.stdout.splitlines()


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Timed:
    runs: list[Run]

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.seconds)

    def cell(self) -> str:
        if len(self.runs) == 1:
            return f"{self.best.seconds:.2f}"
        return f"{self.best.seconds:.2f} (median {statistics.median(r.seconds for r in self.runs):.2f})"


def timed(label: str, argv: list[str], runs: int, env: dict[str, str] | None = None) -> Timed:
    return Timed([run(label, argv, env) for _ in range(runs)])


def run_limited(label: str, argv: list[str], timeout: float, env: dict[str, str] | None = None) -> Run | str:
    """``run`` with a time limit: the reason as a string when it fails or runs out of time."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    out = p.stdout.read() if p.stdout else b""
    err = p.stderr.read() if p.stderr else b""
    _, status, usage = os.wait4(p.pid, 0)
    timer.cancel()
    seconds = time.perf_counter() - t
    if seconds >= timeout:
        return f"did not finish in {timeout:.0f} s"
    if status != 0:
        return f"exit status {status}: {err.decode(errors='replace').strip()[:300]}"
    return Run(label, seconds, usage.ru_maxrss / 1024, out.decode(errors="replace"))


def bench(args: argparse.Namespace) -> None:
    only = set(args.only.split(","))
    targets: list[tuple[str, Path, str, Path | None, dict[str, str], Path | None]] = []
    if "corpus" in only:
        targets.append(("fixture corpus", CORPUS, f'process("{CORPUS}").function("*")', None, {}, None))
    if "glibc" in only:
        g = glibc()
        if g is None:
            print("glibc: no libc6-dbg (scripts/fetch-libc-dbg amd64 failed); skipped")
        else:
            libc, debug, env = g
            targets.append(("glibc 2.36 (libc6-dbg)", libc, f'process("{libc}").function("*")', debug, env, None))
    if "vmlinux" in only:
        v = args.vmlinux or vmlinux()
        targets.append(("vmlinux 6.1.0-56", v, 'kernel.function("*")', None, {}, v))

    load_before = _load()
    cache = tempfile.mkdtemp(prefix="patchscope-bench-")
    env = {"PATCHSCOPE_CACHE": cache}
    rows = [
        (
            "target",
            "patchscope list s",
            "RSS MiB",
            "lines",
            "stap -L s",
            "RSS MiB",
            "lines",
            "stap / patchscope",
        )
    ]
    notes = []
    try:
        for label, binary, pattern, debug, stap_env, kernel in targets:
            argv = patchscope_argv(binary, pattern, debug)
            first = run(f"{label}: patchscope list, filling the index cache", argv, env)
            ps = timed(f"{label}: patchscope list", argv, args.runs, env)
            notes.append(f"{label}: patchscope's first run (index built) {first.seconds:.2f} s")
            stub = stap_stub(kernel) if shutil.which("stap") else None
            if stub is None:
                rows.append((label, ps.cell(), f"{ps.best.max_rss_mb:.0f}", _count(ps.best), "no stap", "", "", ""))
                continue
            if kernel is not None and args.no_stap_on_vmlinux:
                rows.append((label, ps.cell(), f"{ps.best.max_rss_mb:.0f}", _count(ps.best), "skipped", "", "", ""))
                continue
            if kernel is not None:
                st = run_limited(f"{label}: stap -L", stap_argv(stub, pattern), args.stap_kernel_timeout, stap_env)
                if isinstance(st, str):
                    rows.append((label, ps.cell(), f"{ps.best.max_rss_mb:.0f}", _count(ps.best), st, "", "", ""))
                    continue
                peer = Timed([st])
            else:
                peer = timed(f"{label}: stap -L", stap_argv(stub, pattern), args.runs, stap_env)
            rows.append(
                (
                    label,
                    ps.cell(),
                    f"{ps.best.max_rss_mb:.0f}",
                    _count(ps.best),
                    peer.cell(),
                    f"{peer.best.max_rss_mb:.0f}",
                    _count(peer.best),
                    f"{peer.best.seconds / ps.best.seconds:.1f}x",
                )
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"best of {args.runs} runs each (median in brackets); load average before: {load_before}")
    print(table(rows))
    for n in notes:
        print(n)
    print(f"load average after: {_load()}")
    print("target: patchscope list vmlinux 'kernel.function(\"*\")' <= 10 s with a warm index (2 cores)")


def _count(r: Run) -> str:
    return f"{len(r.stdout.splitlines()):,}"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the comparison ------------------------------------------------------------------------------

LINE = re.compile(
    r'^(?:process\("[^"]*"\)|kernel|module\("[^"]*"\))\.function\("([^"@]*)(?:@([^"]*?)(?::(\d+))?)?"\)'
    r"((?:\.(?:inline|call|return))?)(?: pc=(\S+))?(.*)$"
)
#: GCC's suffixes of a changed body; a clone's stem may be the linkage name (__GI_x.part.0).
CLONE = re.compile(r"(\.(?:isra|constprop|part|lto_priv|cold)(?:\.\d+)?)+$")


@dataclass
class Entry:
    text: str
    name: str
    file: str | None
    line: int | None
    suffix: str
    pcs: list[int]
    variables: list[str]
    source: str = ""

    @property
    def key(self) -> tuple[str, str | None, int | None]:
        return (self.source, os.path.basename(self.file) if self.file else None, self.line)


def parse(lines: list[str]) -> list[Entry]:
    out = []
    for text in lines:
        m = LINE.match(text)
        if m is None:
            raise ValueError(f"not a listing line: {text!r}")
        name, file, line, suffix, pcs, rest = m.groups()
        out.append(
            Entry(
                text,
                name,
                file,
                int(line) if line else None,
                suffix,
                [int(p, 16) for p in pcs.split(",")] if pcs else [],
                ["$" + v for v in rest.strip()[1:].split(" $")] if rest.strip().startswith("$") else [],
                CLONE.sub("", name),
            )
        )
    return out


@dataclass
class Kinds:
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    accounts: list[str] = field(default_factory=list)

    def add(self, kind: str, example: str, n: int = 1) -> None:
        self.counts[kind] += n
        if len(self.examples[kind]) < 3:
            self.examples[kind].append(example)

    def show(self, title: str) -> str:
        out = [*self.accounts, title]
        for kind, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {n:6,}  {kind}")
            out += [f"            e.g. {e}" for e in self.examples[kind]]
        return "\n".join(out)


def symbol_addresses(elf: Path) -> dict[str, set[int]]:
    """Function symbol name (version dropped) -> addresses, from ``nm`` (independent of patchscope)."""
    out: dict[str, set[int]] = defaultdict(set)
    for ln in subprocess.run(["nm", str(elf)], capture_output=True, text=True).stdout.splitlines():
        parts = ln.split()
        if len(parts) == 3 and parts[1] in "tTwWiI":
            out[parts[2].split("@")[0]].add(int(parts[0], 16))
    return out


def compare(
    stap: dict[str, list[str]],
    ours: dict[str, list[str]],
    ours_v: list[str],
    syms: dict,
    blocked: Callable[[Entry, set[int]], str | None] | None = None,
) -> Kinds:
    """Sort every difference between the two listings of each mode into a kind. ``blocked``
    says which SystemTap blocklist entry refuses a function at some addresses (kernel)."""
    k = Kinds()
    everything = parse(ours_v)
    addr_of = {e.name: set(e.pcs) for e in everything}
    addr_line: dict[tuple, set[int]] = defaultdict(set)
    for e in everything:
        addr_line[(e.name, e.file, e.line, e.suffix)].update(e.pcs)
    with_file = {e.name for e in everything if e.file}
    for mode in stap:
        s, p = parse(stap[mode]), parse(ours[mode])
        names = {e.name for e in s}
        for e in p:  # a clone named after the linkage name: __GI__IO_un_link.part.0
            if e.source not in names and e.source.startswith("__GI_") and e.source[5:] in names:
                e.source = e.source[5:]
        skeys, pkeys = defaultdict(list), defaultdict(list)
        for e in s:
            skeys[e.key].append(e)
        for e in p:
            pkeys[e.key].append(e)
        m = mode or ".function"
        same = skeys.keys() & pkeys.keys()
        k.accounts.append(
            f"{m}: stap {len(s):,} lines ({sum(len(skeys[x]) for x in same):,} for a function ours lists too), "
            f"ours {len(p):,} ({sum(len(pkeys[x]) for x in same):,})"
        )
        # same function on both sides
        for key in skeys.keys() & pkeys.keys():
            k.add(f"{m}: same function", key[0])
            for e in pkeys[key]:
                if ".part" in e.name:
                    k.add(f"{m}: a .part body (stap's line for the function stands for its inline sites)", e.text)
                elif e.name != e.source:
                    k.add(f"{m}: a clone named by its symbol (stap: source name)", f"{e.name} | stap: {key[0]}")
            texts = Counter(e.text for e in pkeys[key])
            for text, n in texts.items():
                if n > 1:
                    k.add(f"{m}: ours repeats a line, one per instance (stap prints it once)", f"{n} x {text}", n - 1)
            sp = {e.file for e in skeys[key]}
            pp = {e.file for e in pkeys[key]}
            if sp != pp:
                k.add(f"{m}: path spelt differently", f"{key[0]}: stap {sorted(sp)} / ours {sorted(pp)}")
        # on one side only
        ours_nofile = {e.name for e in p if e.file is None}
        stap_with_file = {e.name for e in s if e.file}
        stap_addr: dict[int, str] = {}
        for e in s:
            for a in syms.get(e.name, ()):
                stap_addr.setdefault(a, e.name)
        for e in (e for key in skeys.keys() - pkeys.keys() for e in skeys[key]):
            if e.file is None and e.name.endswith(".cold"):
                k.add(f"{m}: stap only: a .cold part listed as a function", e.text)
            elif e.file and e.name in ours_nofile:
                k.add(f"{m}: assembly: stap adds @file:line from the line table", e.text)
            elif e.file is None and e.name in with_file:
                k.add(f"{m}: stap only: a body whose DIE has DW_AT_ranges listed as a bare symbol", e.text)
            elif e.file is None and mode == ".inline":
                k.add(f"{m}: stap only: a symbol without DWARF listed as inline", e.text)
            elif e.file is None:
                k.add(f"{m}: stap only: a symbol without DWARF under another alias", e.text)
            else:
                k.add(f"{m}: UNEXPLAINED stap only", e.text)
        for e in (e for key in pkeys.keys() - skeys.keys() for e in pkeys[key]):
            if e.file is None and e.name in stap_with_file:
                k.add(f"{m}: assembly: ours has no @file:line (the same DIE as stap's line)", e.text)
                continue
            suffix = ".inline" if e.suffix == ".inline" else ""
            rule = blocked(e, addr_line[(e.name, e.file, e.line, suffix)]) if blocked else None
            shared = {stap_addr[a] for a in addr_of.get(e.name, ()) | syms.get(e.name, set()) if a in stap_addr}
            if rule:
                k.add(f"{m}: ours only: SystemTap's blocklist refuses it ({rule})", e.text)
            elif ".part" in e.name:
                k.add(f"{m}: ours only: a .part body", e.text)
            elif e.file is None and shared:
                other = sorted(shared)[0]
                what = "assembly DIE" if other in stap_with_file else "symbol"
                k.add(f"{m}: ours only: another {what} at an address stap lists once", f"{e.name} = stap's {other}")
            elif e.file is None:
                k.add(f"{m}: ours only: a function symbol no concrete DIE describes", e.text)
            else:
                k.add(f"{m}: UNEXPLAINED ours only", e.text)
    return k


#: SystemTap 4.8's kernel blocklist entries that ``patchscope.rules.peers`` does not transcribe
#: (``strings /usr/bin/stap``: "|special_mapping_.*", "|.*_pte_.*", "|fs/seq_file\\.c").
EXTRA_BLOCKED_NAMES = re.compile(r"^(special_mapping_.*|.*_pte_.*)$")
EXTRA_BLOCKED_FILES = re.compile(r"^fs/seq_file\.c$")


def kernel_blocklist(elf: Path) -> Callable[[Entry, set[int]], str | None]:
    """Which of SystemTap's kernel blocklist rules refuses a line, by the section of each of its
    addresses (readelf), its name and its file; the rules are patchscope's transcription
    (rules/peers.py) plus the entries above."""
    from patchscope.rules import peers

    sections = []
    for ln in subprocess.run(["readelf", "-SW", str(elf)], capture_output=True, text=True).stdout.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", ln)
        if m and int(m.group(2), 16):
            low = int(m.group(2), 16)
            sections.append((low, low + int(m.group(3), 16), m.group(1)))

    def section(a: int) -> str | None:
        return next((n for lo, hi, n in sections if lo <= a < hi), None)

    def rule(e: Entry, addresses: set[int]) -> str | None:
        name, file = e.source, e.file or ""
        for sec in {section(a) for a in addresses} or {None}:
            r = peers._kernel_rule("x86_64", name, file, sec, bool(peers._STAP_FUNCTIONS.match(name)))
            if r:
                return re.sub(r"(section|file) \S+", r"\1", r)
        if EXTRA_BLOCKED_NAMES.match(name):
            return "a blocklisted function name, stap 4.8's x86_64 additions"
        if EXTRA_BLOCKED_FILES.match(file):
            return "declared in blocklisted file, stap 4.8's additions"
        return None

    return rule


def compare_target(args: argparse.Namespace) -> None:
    """Both tools' listings of one binary, saved to / reused from ``--save``, and the kinds."""
    stub, env, debug = None, {}, None
    if args.target == "glibc":
        g = glibc()
        if g is None:
            raise SystemExit("--compare glibc needs glibc's debug file (apt-get install libc6-dbg)")
        binary, debug, env = g
        head = f'process("{binary}")'
    elif args.target == "corpus":
        binary, head = CORPUS, f'process("{CORPUS}")'
    else:
        binary, head = args.vmlinux or vmlinux(), "kernel"
    saved = args.save or Path(tempfile.mkdtemp(prefix="patchscope-list-"))
    saved.mkdir(parents=True, exist_ok=True)

    def get(path: Path, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        if not path.is_file():
            path.write_text("".join(ln + "\n" for ln in listing(argv, env)))
        return path.read_text().splitlines()

    stap, ours = {}, {}
    for mode in args.modes.split(","):
        mode = "" if mode == "function" else f".{mode}"
        pattern = f'{head}.function("*"){mode}'
        if not (saved / f"stap{mode or '.function'}.txt").is_file():
            stub = stub or stap_stub(binary if head == "kernel" else None)
            if stub is None:
                raise SystemExit("--compare needs stap (apt-get install systemtap)")
        stap[mode] = get(saved / f"stap{mode or '.function'}.txt", stap_argv(stub or Path(), pattern), env)
        ours[mode] = get(saved / f"patchscope{mode or '.function'}.txt", patchscope_argv(binary, pattern, debug))
    ours_v = get(saved / "patchscope.function.v.txt", patchscope_argv(binary, f'{head}.function("*")', debug, True))
    blocked = kernel_blocklist(binary) if head == "kernel" else None
    kinds = compare(stap, ours, ours_v, symbol_addresses(debug or binary), blocked)
    print(f"{args.target}: {binary}" + (f" (debug file {debug})" if debug else "") + f"; listings in {saved}")
    print(kinds.show("kinds (lines; a kind on one side only counts that side's lines):"))
    for mode in (m for m in (".call", ".inline") if m in stap):
        states = variable_states(binary, debug, f'{head}.function("*"){mode}')
        found = variable_kinds(stap[mode], ours[mode], states)
        print(found.show(f"variables of {mode} (a line's variable, by why the two listings differ on it):"))


#: VariableAt states a probe reads a value from (patchscope.probes.listing.READABLE).
READABLE = frozenset({"register", "memory", "constant", "computed", "pieces"})


def variable_states(binary: Path, debug: Path | None, pattern: str) -> dict[tuple, dict[str, Counter]]:
    """Per function (its line key) and variable, the states patchscope finds at the addresses the
    point resolves to, through the public pieces ``list`` is built from: resolve, the scope of each
    landing, variables_at_many. (.part bodies are not among the landings; they are left out of the
    comparison anyway.)"""
    import patchscope
    from patchscope.index.context import Context
    from patchscope.index.variables import variables_at_many
    from patchscope.probes import syntax as ps
    from patchscope.probes.judge import scopes
    from patchscope.probes.resolve import resolve

    b = patchscope.open(binary, debug_file=debug) if debug else patchscope.open(binary)
    cx = Context(b)
    landings = resolve(cx, ps.parse(pattern)).landings
    at = variables_at_many(b, list(zip(scopes(cx, landings), (lnd.address for lnd in landings))))
    files = cx.functions.column("decl_file").to_pylist()
    lines = cx.functions.column("decl_line").to_pylist()
    out: dict[tuple, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for lnd, variables in zip(landings, at):
        f = files[lnd.fid]
        key = (cx.fn_name[lnd.fid], os.path.basename(f) if f else None, lines[lnd.fid] if f else None)
        out[key]["#"][""] += 1  # addresses
        for v in variables:
            out[key][v.name][_reason(v)] += 1
    return out


def variable_kinds(stap_lines: list[str], ours_lines: list[str], states: dict[tuple, dict[str, Counter]]) -> Kinds:
    """Each variable of each line, ours against stap's line for the same function; where they
    differ, the states patchscope found at the function's addresses say why."""
    theirs: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for e in parse(stap_lines):
        theirs[e.key].append({v[1:].partition(":")[0]: v[1:].partition(":")[2] for v in e.variables})
    k = Kinds()
    names = {e.name for e in parse(stap_lines)}
    ours: list[Entry] = []
    for e in parse(ours_lines):
        if e.source not in names and e.source.startswith("__GI_") and e.source[5:] in names:
            e.source = e.source[5:]
        if e.key in theirs and ".part" not in e.name:  # a .part body: stap's line is for the inline sites
            ours.append(e)
    copies: dict[tuple, list[set[str]]] = defaultdict(list)
    for e in ours:
        copies[e.key].append({v.removesuffix("?") for v in e.variables})
    for e in ours:
        mine = {v[1:].partition(":")[0]: v for v in e.variables}
        typed = {v.removesuffix("?") for v in e.variables}
        # the stap line of this copy: two spellings of one file can give two (char and wchar_t builds)
        stap_vars = max(theirs[e.key], key=lambda t: len(typed & {f"${n}:{ty}" for n, ty in t.items()}))
        every_copy = set.intersection(*copies[e.key])
        found = states.get(e.key, {})
        n = sum(found["#"].values()) if "#" in found else 0
        where = f"{e.name} ({n} address{'es' * (n != 1)} of the function)"
        for name in sorted(stap_vars.keys() | mine.keys()):
            ex = f"${name} in {where}"
            if name in stap_vars and name in mine:
                partial = mine[name].endswith("?")
                k.add("both list it" + (" (ours: '?', at some addresses only)" if partial else ""), ex)
                spelt = mine[name].removesuffix("?").partition(":")[2]
                if spelt != stap_vars[name]:
                    k.add("both list it, type spelt differently", f"${name}: ours {spelt} / stap {stap_vars[name]}")
            elif name in stap_vars:
                why = found.get(name)
                reason = ", ".join(sorted(why)) if why else "not a variable of the DIE ours reads"
                k.add(f"stap only; ours: {reason}", ex)
            elif mine[name].endswith("?"):
                k.add("ours only, '?': stap prints only what every address of the line has", ex)
            elif len(copies[e.key]) > 1 and mine[name] not in every_copy:
                k.add("ours only: stap merges the copies' lines into what every copy has (name and type)", ex)
            else:
                k.add("ours only, one copy, at every address", ex)
    return k


def _reason(v: object) -> str:
    state = getattr(v, "state", "")
    if state in READABLE:
        if getattr(v, "in_block", False):
            return "in a lexical block"
        if getattr(v, "view_only", False):
            return "bound only in a later location view"
        return "readable"
    return str(state)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="corpus,glibc,vmlinux")
    ap.add_argument("--vmlinux", type=Path)
    ap.add_argument("--stap-kernel-timeout", type=float, default=3600)
    ap.add_argument("--no-stap-on-vmlinux", action="store_true", help="time patchscope only on the vmlinux")
    ap.add_argument("--compare", choices=["glibc", "corpus", "vmlinux"], dest="target", help="the differences, by kind")
    ap.add_argument("--modes", default="function,call,inline", help="with --compare: which listings")
    ap.add_argument("--save", type=Path, help="with --compare: keep both tools' listings here (and reuse them)")
    args = ap.parse_args()
    if args.target:
        compare_target(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
