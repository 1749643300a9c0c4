"""SystemTap itself as the oracle of ``check``'s stap predictions: each point asked of
``stap -v -L`` (listing mode: pass 2 only, nothing is built or run, no root and no kernel
needed, with the stub build dir of bench/stap_stub.sh) and of ``patchscope.probes.resolve``,
the answers compared as (addresses, or refused; the ``$variables`` stap lists at each address).

``stap -L`` takes many points in one run: its argument becomes ``probe ARG {}``, so ``A ? {}
probe B ?`` is two probes, each optional point is resolved on its own (listing mode reports no
error, so an unresolved point is simply absent; one probe of several comma-separated points
would share its results, and a symbol-table function's second point at an address already
probed would be dropped: ``query_symtab_func_info``, PR29676) and ``-v`` prints one line per
derived probe, with its ``pc=`` and the variables stap would let a handler read there
(``dwarf_derived_probe::saveargs``). A line names
its point in stap's canonical form (``function("F@file:N")``, ``statement("F@file:N")``), which
is mapped back to the point asked. Used by tests/test_stap_oracle.py (the fixtures) and
bench/stap_agreement.py (a vmlinux sample, whose answers are kept in tests/data/)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.probes import stap
from patchscope.probes import syntax as ps
from patchscope.probes.judge import Judge

ROOT = Path(__file__).resolve().parents[1]

#: The kinds of function point, by stap's suffix.
SUFFIXES = {"function": "", "return": ".return", "inline": ".inline", "call": ".call"}


@dataclass(frozen=True)
class Point:
    text: str
    #: ``function``, ``return``, ``inline``, ``call`` or ``line``.
    kind: str
    function: str
    line: int = 0

    @property
    def key(self) -> tuple[str, str | int]:
        """What names the point in stap's output: its function and its suffix, or its line."""
        return (self.function, self.line if self.kind == "line" else SUFFIXES[self.kind])


@dataclass
class Answer:
    #: The addresses probed, sorted; None when the point is refused.
    addresses: tuple[int, ...] | None
    #: At each address, the ``$name`` of the variables listed there, sorted.
    variables: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def record(self) -> dict:
        return {
            "addresses": None if self.addresses is None else list(self.addresses),
            "variables": {f"{a:#x}": list(v) for a, v in self.variables.items()},
        }

    @classmethod
    def load(cls, d: dict) -> Answer:
        addresses = None if d["addresses"] is None else tuple(d["addresses"])
        return cls(addresses, {int(a, 16): tuple(v) for a, v in d["variables"].items()})


def stub(vmlinux: Path | None = None) -> Path:
    """bench/stap_stub.sh's build dir (for a vmlinux, its own)."""
    args = ["-k", str(vmlinux)] if vmlinux else []
    out = subprocess.run([str(ROOT / "bench/stap_stub.sh"), *args], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def points(target: str, names: list[str], lines: dict[str, list[int]]) -> list[Point]:
    """Every kind of function point for each name (``target`` is ``process("BIN")`` or
    ``kernel``), and ``statement("F@*:N")`` for each of ``lines[F]``."""
    out = [Point(f'{target}.function("{n}"){s}', k, n) for n in names for k, s in SUFFIXES.items()]
    out += [Point(f'{target}.statement("{n}@*:{i}")', "line", n, i) for n in names for i in lines.get(n, [])]
    return out


def function_lines(cx: Context, names: list[str], lines: int) -> dict[str, list[int]]:
    """The ``lines`` lines from each function's declaration line on (each of its
    declarations, when several functions share the name)."""
    decl = cx.functions.column("decl_line").to_numpy()
    wanted = set(names)
    out: dict[str, set[int]] = {}
    for fid, name in enumerate(cx.fn_name):
        if name in wanted and decl[fid]:
            out.setdefault(name, set()).update(range(int(decl[fid]), int(decl[fid]) + lines))
    return {n: sorted(v) for n, v in out.items()}


_LINE = re.compile(
    r'^(?:process\("[^"]*"\)|kernel)\.(function|statement)\("([^"@]*)(?:@[^"]*:(\d+))?"\)'
    r"((?:\.(?:inline|call|return))?)\?? /\* pc=(\S+) \*/(.*)$"
)


#: stap's ``-a`` for an architecture patchscope names (``Binary.arch``): a process of another
#: machine than the session's resolves to nothing without it.
STAP_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "ppc64le": "powerpc", "ppc64": "powerpc", "riscv64": "riscv"}


def stap_answers(
    build: Path, pts: list[Point], symbols: dict[str, int], arch: str = "x86_64", jobs: int = 2
) -> dict[str, Answer]:
    """stap's answer to every point: one ``stap -v -L`` per chunk of points, ``jobs`` at once."""
    by_key = {p.key: p for p in pts}
    with ThreadPoolExecutor(jobs) as pool:
        outputs = list(pool.map(lambda c: _listed(build, STAP_ARCH[arch], c), _chunks(pts)))
    found: dict[str, dict[int, set[str]]] = {}
    for out in outputs:
        for line in out.splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            kind, name, lineno, suffix, pc, rest = m.groups()
            p = by_key.get((name, int(lineno)) if kind == "statement" else (name, suffix))
            assert p is not None, f"stap printed a point not asked: {line}"
            found.setdefault(p.text, {}).setdefault(_pc(pc, symbols), set()).update(_names(rest))
    return {
        p.text: Answer(tuple(sorted(found[p.text])), {a: tuple(sorted(v)) for a, v in sorted(found[p.text].items())})
        if p.text in found
        else Answer(None)
        for p in pts
    }


def confirm_refusals(
    build: Path, arch: str, pts: list[Point], theirs: dict[str, Answer], mine: dict[str, Answer]
) -> None:
    """Listing mode hides errors: a line that throws "no line records" in one compile unit
    ends stap's query there, and ``-L`` lists the places of the units before it, where a run
    (``-p2``) refuses the point. Each line ``-L`` placed and patchscope refuses is asked again
    with ``stap -p2``; refused there, it is refused in ``theirs``."""
    for p in pts:
        if p.kind == "line" and theirs[p.text].addresses is not None and mine[p.text].addresses is None:
            r = subprocess.run(
                ["stap", "-a", STAP_ARCH[arch], "-r", str(build), "-p2", "-e", f"probe {p.text} {{}}"],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if r.returncode != 0 and "no line records" in r.stderr:
                theirs[p.text] = Answer(None)


def _chunks(pts: list[Point], size: int = 100_000) -> Iterator[list[Point]]:
    """Points whose joined text stays under Linux's limit on one argument (128 KiB)."""
    chunk: list[Point] = []
    length = 0
    for p in pts:
        if chunk and length + len(p.text) + 14 > size:
            yield chunk
            chunk, length = [], 0
        chunk.append(p)
        length += len(p.text) + 14
    if chunk:
        yield chunk


def _listed(build: Path, arch: str, pts: list[Point]) -> str:
    spec = " {} probe ".join(f"{p.text} ?" for p in pts)
    r = subprocess.run(
        ["stap", "-v", "-a", arch, "-r", str(build), "-L", spec], capture_output=True, text=True, timeout=1800
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _pc(pc: str, symbols: dict[str, int]) -> int:
    """``SECTION+0xOFF`` (``.dynamic`` in an ET_DYN: relative to the load base, the link
    address) or ``<symbol+off>``: the address."""
    base, _, off = pc.strip("<>").rpartition("+")
    return (0 if base in (".dynamic", ".absolute") else symbols[base]) + int(off, 0)


def _names(rest: str) -> list[str]:
    """The ``$name`` of each ``$name:type`` (a type may hold spaces, never a ``$``), less
    ``$return``: the index holds no return types, so it is not compared."""
    return [n for v in re.findall(r"\$[^$]*", rest) if (n := v.split(":", 1)[0]) != "$return"]


def patchscope_answers(binary: Binary, pts: list[Point]) -> dict[str, Answer]:
    """``check``'s prediction for every point: its addresses and, at each, the variables stap
    lists there (:func:`patchscope.probes.stap.listed`)."""
    verdicts = Judge(binary).many([ps.parse(p.text) for p in pts])
    out = {}
    for p, v in zip(pts, verdicts):
        if not v.landings:
            out[p.text] = Answer(None)
            continue
        names: dict[int, set[str]] = {}
        for lv in v.landings:
            names.setdefault(lv.landing.address, set()).update(stap.listed(lv.landing.kind, lv.variables))
        out[p.text] = Answer(tuple(sorted(names)), {a: tuple(sorted(n)) for a, n in sorted(names.items())})
    return out


def compare(
    theirs: dict[str, Answer], mine: dict[str, Answer], pts: list[Point]
) -> dict[str, tuple[int, int, list[tuple[Point, Answer, Answer]]]]:
    """Per kind (``variables`` too): (agreeing, compared, the differences)."""
    out: dict[str, tuple[int, int, list[tuple[Point, Answer, Answer]]]] = {}

    def count(kind: str, same: bool, p: Point) -> None:
        ok, n, diffs = out.get(kind, (0, 0, []))
        out[kind] = (ok + same, n + 1, diffs if same else [*diffs, (p, theirs[p.text], mine[p.text])])

    for p in pts:
        t, m = theirs[p.text], mine[p.text]
        count(p.kind, t.addresses == m.addresses, p)
        if t.addresses is not None and t.addresses == m.addresses:
            count("variables", t.variables == m.variables, p)
    return out
