"""SystemTap's tapset aliases (``syscall.open``, ``vfs.read``, ``nfs.proc.*``), expanded as
stap expands them.

A tapset defines ``probe ALIAS = TARGET, TARGET ? { … }`` (or ``+=``); a script probing
``ALIAS`` probes the targets, which may be aliases themselves. The library is read from the
directories stap 4.8 reads for the kernel runtime (main.cxx, pass 1b: ``linux/ARCH``,
``linux``, ``ARCH``, the top; ``*.stpm`` macros first), each file preprocessed against the build
with :func:`patchscope.probes.scripts.preprocess`, its ``@define`` macros put in the targets
(``@arch_syscall_prefix``). It is read once per process, and only when a point names an alias.

Matching and derivation follow elaborate.cxx: a point's components are matched one by one
against the alias names (``*`` globs a component, ``match_node::find_and_build``); components
past an alias's name are a suffix appended to each of its targets (``try_suffix_expansion``:
``vfs.read.maxactive(4)``); each target is derived in turn (``derive_probes``): an optional
(``?``) target may place nothing, a sufficient one (``!``) that places something ends the list,
and under an optional location every failure below is tolerated (its ``parent_optional``). A
required target that places nothing is an error stap prints, and the script does not run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from patchscope.probes import scripts
from patchscope.probes import syntax as ps

#: Where stap 4.8 looks when neither ``PATCHSCOPE_TAPSETS`` nor stap's own
#: ``SYSTEMTAP_TAPSET`` says otherwise (its PKGDATADIR, Debian's ``systemtap-common``).
DEFAULT_DIR = Path("/usr/share/systemtap/tapset")

#: Aliases within aliases: a tapset loop is refused by stap; a bound here keeps a broken one finite.
MAX_DEPTH = 32


def tapset_dir() -> Path:
    for env in ("PATCHSCOPE_TAPSETS", "SYSTEMTAP_TAPSET"):
        if os.environ.get(env):
            return Path(os.environ[env])
    return DEFAULT_DIR


@dataclass(frozen=True)
class Alias:
    """One definition of an alias: its name's components and its targets as written."""

    name: tuple[str, ...]
    targets: tuple[str, ...]
    #: ``linux/sysc_open.stp:40``
    where: str
    #: Why the definition may not be the build's: it stands in a preprocessor branch read on
    #: an unknown condition (a ``CONFIG_*`` of a build whose config is not known).
    unknown: str = ""


@dataclass
class _Node:
    """A node of stap's match tree, over alias names (``match_node``)."""

    children: dict[str, _Node] = field(default_factory=dict)
    ends: list[Alias] = field(default_factory=list)


@dataclass
class Library:
    root: Path
    aliases: list[Alias]
    tree: _Node = field(default_factory=_Node)

    def __post_init__(self) -> None:
        for a in self.aliases:
            node = self.tree
            for part in a.name:
                node = node.children.setdefault(part, _Node())
            node.ends.append(a)


class NoLibrary(Exception):
    """The tapset library is not installed where it is looked for."""


def library(build: scripts.Build) -> Library:
    """The tapset library read for ``build`` (its release, architecture and config decide
    the preprocessor's branches), once per process."""
    root = tapset_dir()
    if not (root / "linux").is_dir() and not any(root.glob("*.stp")):
        raise NoLibrary(
            f"SystemTap's tapset library is not installed ({root}: no tapsets; "
            "install systemtap-common or set PATCHSCOPE_TAPSETS)"
        )
    config = tuple(sorted(build.config.items())) if build.config is not None else None
    return _load(str(root), build.release, build.arch, config)


@functools.lru_cache(maxsize=4)
def _load(root: str, release: str | None, arch: str | None, config: tuple[tuple[str, str], ...] | None) -> Library:
    build = scripts.Build(release, arch, dict(config) if config is not None else None)
    base = Path(root)
    dirs = [f"linux/{arch}", "linux", arch, ""] if arch else ["linux", ""]  # main.cxx's order
    macros: dict[str, str] = {}
    for d in dirs:  # the .stpm files' macros are seen by every tapset
        for f in sorted((base / d).glob("*.stpm")):
            macros.update(_macros(*_preprocessed(f, build)[:2]))
    aliases: list[Alias] = []
    for d in dirs:
        for f in sorted((base / d).glob("*.stp")):
            aliases += _aliases(f, f.relative_to(base).as_posix(), build, macros)
    return Library(base, aliases)


#: ``@define`` renamed so that the preprocessor keeps the body (a ``%( … %)`` with no ``%?``
#: is read as true) and drops it only where a condition around it is false: same length, so
#: offsets stay true.
_KEEP = "@macro_"
_DEFINE = re.compile(r"@define\b")
_MACRO = re.compile(r"@macro_\s+(\w+)\s*(\([^)]*\))?\s*%\(")
#: What ends or nests a macro's body, with strings and comments skipped whole.
_PP_MARK = re.compile(r'"(?:\\.|[^"\\\n])*"|#[^\n]*|//[^\n]*|/\*.*?\*/|(%\()|(%\))', re.S)


def _preprocessed(path: Path, build: scripts.Build) -> tuple[str, str, list[tuple[int, int, str]]]:
    """(original with ``@define`` renamed, its preprocessed text, the ranges read on an
    unknown condition)."""
    try:
        text = _DEFINE.sub(_KEEP, path.read_text(errors="replace"))
    except OSError:  # unreadable: stap would stop on it; the other tapsets still count here
        text = ""
    return (text, *scripts.preprocess(text, build))


def _macros(original: str, pre: str) -> dict[str, str]:
    """The parameterless macros the build keeps (those under a false condition are blanked)."""
    out = {}
    for m in _MACRO.finditer(pre):
        if m.group(2):
            continue  # a macro with parameters is never in a probe point of the library
        end = _close_of(original, m.end())
        out[m.group(1)] = pre[m.end() : end].strip()
    return out


def _close_of(text: str, pos: int) -> int:
    depth = 1
    for m in _PP_MARK.finditer(text, pos):
        depth += bool(m.group(1)) - bool(m.group(2))
        if depth == 0:
            return m.start()
    return len(text)


_USE = re.compile(r"@(\w+)\b(?!\s*\()")


def _aliases(path: Path, name: str, build: scripts.Build, macros: dict[str, str]) -> Iterator[Alias]:
    original, pre, unknown = _preprocessed(path, build)
    local = {**macros, **_macros(original, pre)}
    for probe in scripts.stp_probes(pre):
        if probe.alias and probe.points:
            targets = tuple(_USE.sub(lambda m: local.get(m.group(1), m.group()), t) for _, t in probe.points)
            at = probe.points[0][0]
            why = next((w.partition(";")[0] for lo, hi, w in unknown if lo <= at < hi), "")
            yield Alias(tuple(probe.alias.split(".")), targets, f"{name}:{probe.line}", why)


# -- derivation --------------------------------------------------------------------------------


class _Failed(Exception):
    """A location that derives nothing, and why (stap's ``semantic_error``)."""


@dataclass(frozen=True)
class _Location:
    parts: tuple[ps.Component, ...]
    optional: bool
    sufficient: bool

    @property
    def text(self) -> str:
        return spelled(self.parts)


def spelled(parts: tuple[ps.Component, ...]) -> str:
    def one(name: str, arg: str | int | None) -> str:
        if arg is None:
            return name
        return f"{name}({arg})" if isinstance(arg, int) else f'{name}("' + arg.replace('"', '\\"') + '")'

    return ".".join(one(n, a) for n, a in parts)


#: Whether a concrete point places something, else why not (the caller resolves it).
Placer = Callable[[ps.ProbePoint], str | None]


@dataclass
class Expansion:
    """What an alias point derives: the concrete points placed, the errors stap would print
    (the script then does not run), and the aliases it went through."""

    placed: list[ps.ProbePoint] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    aliases: list[Alias] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def expand(lib: Library, point: ps.ProbePoint, place: Placer) -> Expansion:
    """Derive ``point`` (an alias use) through the library, placing each concrete point with
    ``place`` in the order stap derives them."""
    out = Expansion()
    try:
        written = ps.stap_locations(point.text)
        locations = [_Location(p, o or point.optional, s or point.sufficient) for p, o, s in written]
    except ps.ProbeSyntaxError as e:
        out.errors.append(f"{point.text}: {e.message}")
        return out
    _Deriver(lib, place, out).locations(locations, False, (), rethrow=False)
    return out


@dataclass
class _Deriver:
    lib: Library
    place: Placer
    out: Expansion

    def locations(self, locs: list[_Location], parent_optional: bool, chain: tuple[Alias, ...], rethrow: bool) -> None:
        """elaborate.cxx ``derive_probes``: each location in turn."""
        for loc in locs:
            before = len(self.out.placed)
            tolerated = loc.optional or parent_optional
            try:
                self.find(loc, parent_optional, chain)
                if not tolerated and len(self.out.placed) == before:
                    raise _Failed(f"{loc.text}: no match")
            except _Failed as e:
                if tolerated:
                    continue
                if rethrow:
                    raise
                self.out.errors.append(str(e))
                continue
            if loc.sufficient and len(self.out.placed) > before:
                break

    def find(self, loc: _Location, parent_optional: bool, chain: tuple[Alias, ...]) -> None:
        """One match tree holds stap's families and the aliases (``perf.hw.*`` beside
        ``perf.type(N)``): the aliases are tried first, a family when none matches."""
        head = loc.parts[0][0]
        if head not in self.lib.tree.children and "*" not in head:
            self.concrete(loc)
            return
        before = len(self.out.placed)
        try:
            self.match(self.lib.tree, loc, 0, parent_optional, chain)
        except _Failed:
            if head not in _FAMILIES:
                raise
        if len(self.out.placed) == before and head in _FAMILIES:
            self.concrete(loc)

    def concrete(self, loc: _Location) -> None:
        """A point of a probe family stap builds in (``kernel.function``, ``kprobe``, …)."""
        try:
            points = ps.stap_points(loc.text)
        except ps.ProbeSyntaxError as e:
            raise _Failed(f"{loc.text}: {e.message}") from None
        for p in points:
            if p.mode == ps.ALIAS and loc.parts[0][0] in _NO_CODE_FAMILIES:
                p = replace(p, mode=ps.NO_CODE, kind=f"{loc.parts[0][0]}: {_NO_CODE_FAMILIES[loc.parts[0][0]]}")
            elif p.mode == ps.ALIAS:
                raise _Failed(f"{loc.text}: no probe family nor tapset alias of that name (probe point mismatch)")
            alternatives = [p]
            if p.kind == "kprobe" and p.function and "{" in p.function:
                # tapset-dwarfless matches its pattern with brace expansion (``__{ia32,x64}_sys_open``)
                alternatives = [_with_function(p, f) for f in braces(p.function)]
            failed = [self.place(a) for a in alternatives]
            if all(w is not None for w in failed):
                raise _Failed(failed[0] or "")
            self.out.placed += [a for a, w in zip(alternatives, failed) if w is None]

    def match(self, node: _Node, loc: _Location, pos: int, parent_optional: bool, chain: tuple[Alias, ...]) -> None:
        """elaborate.cxx ``match_node::find_and_build``, over alias names."""
        if pos == len(loc.parts):
            if not node.ends:
                follow = " ".join(sorted(node.children))
                raise _Failed(f"{loc.text}: probe point truncated (follow: {follow})")
            for alias in node.ends:
                self.alias(alias, loc, (), parent_optional, chain)
            return
        name, arg = loc.parts[pos]
        before = len(self.out.placed)
        if "*" in name and arg is None:
            for key, sub in sorted(node.children.items()):
                if fnmatch.fnmatchcase(key, name):
                    parts = (*loc.parts[:pos], (key, None), *loc.parts[pos + 1 :])
                    with contextlib.suppress(_Failed):  # "Ignore semantic_errors while expanding wildcards"
                        self.match(sub, _Location(parts, loc.optional, loc.sufficient), pos + 1, parent_optional, chain)
            if len(self.out.placed) == before:
                self.suffix(node, loc, pos, parent_optional, chain)
            if len(self.out.placed) == before and not loc.optional:
                raise _Failed(f"{loc.text}: probe point mismatch: didn't find any wildcard matches")
            return
        child = node.children.get(name) if arg is None else None
        if child is not None:
            self.match(child, loc, pos + 1, parent_optional, chain)
            return
        self.suffix(node, loc, pos, parent_optional, chain)
        if len(self.out.placed) == before and not loc.optional:
            raise _Failed(f"{loc.text}: probe point mismatch at .{name}")

    def suffix(self, node: _Node, loc: _Location, pos: int, parent_optional: bool, chain: tuple[Alias, ...]) -> None:
        """``try_suffix_expansion``: the components left over go after each target."""
        for alias in node.ends:
            try:
                self.alias(alias, loc, loc.parts[pos:], parent_optional, chain)
            except _Failed:
                if not loc.optional:
                    raise

    def alias(
        self,
        alias: Alias,
        loc: _Location,
        suffix: tuple[ps.Component, ...],
        parent_optional: bool,
        chain: tuple[Alias, ...],
    ) -> None:
        """``alias_expansion_builder::build_with_suffix``."""
        if alias in chain or len(chain) >= MAX_DEPTH:
            raise _Failed(f"recursive loop in alias expansion of {loc.text} at {alias.where}")
        if alias not in self.out.aliases:
            self.out.aliases.append(alias)
        if alias.unknown:
            # it may not be the build's definition: what it fails to place is not held against the point
            parent_optional = True
            note = f"{'.'.join(alias.name)} ({alias.where}) may not be the build's: {alias.unknown}"
            if note not in self.out.notes:
                self.out.notes.append(note)
        targets = []
        for text in alias.targets:
            try:
                for parts, optional, sufficient in ps.stap_locations(text):
                    targets.append(_Location(parts + suffix, optional, sufficient))
            except ps.ProbeSyntaxError as e:
                raise _Failed(f"{alias.where}: {text}: {e.message}") from None
        self.locations(targets, parent_optional or loc.optional, (*chain, alias), rethrow=bool(suffix))


#: stap's families that patch no code and that the point syntax leaves to the tapsets.
_NO_CODE_FAMILIES = {"netfilter": "a netfilter hook, no code is patched", "java": "a Byteman rule in a JVM"}

#: The heads of stap's own probe families, which a tapset may also name aliases under.
_FAMILIES = frozenset(
    {"kernel", "module", "process", "kprobe", "timer", "perf", "procfs", "begin", "end", "error", "never", "netfilter"}
)


def _with_function(p: ps.ProbePoint, function: str) -> ps.ProbePoint:
    return replace(p, function=function, text=p.text.replace(f'"{p.function}"', f'"{function}"', 1))


def braces(pattern: str) -> list[str]:
    """csh brace expansion: ``__{ia32,x64}_sys_open`` is ``__ia32_sys_open`` and
    ``__x64_sys_open`` (nested groups too); a ``{`` without its ``}`` stays as written."""
    depth, start = 0, pattern.find("{")
    if start < 0:
        return [pattern]
    cuts = [start]
    for i in range(start, len(pattern)):
        c = pattern[i]
        depth += (c == "{") - (c == "}")
        if c == "," and depth == 1:
            cuts.append(i)
        if depth == 0:
            head, tail = pattern[:start], pattern[i + 1 :]
            pieces = [pattern[a + 1 : b] for a, b in zip(cuts, [*cuts[1:], i])]
            return [head + x + t for p in pieces for x in braces(p) for t in braces(tail)]
    return [pattern]
