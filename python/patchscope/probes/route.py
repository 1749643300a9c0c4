"""Which binary of a kernel a probe point is in, before it is resolved there.

The tools look a point up where the kernel would run it: SystemTap's ``kernel.*`` in the
vmlinux and ``module("M").*`` in ``M.ko`` (tapsets.cxx ``dwarf_builder::build``: one ``dwflpp``
per module, ``module("*")`` over every module of the release); bpftrace's ``kprobe:M:f`` and
tracefs' ``p:ev M:f`` (kernel/trace/trace_kprobe.c ``trace_kprobe_module_exist``) in module M;
perf probe's ``-m M`` in that module; a bare ``kprobe:f``, ``p:ev f`` or an address in the
vmlinux. Module names are compared as the kernel compares them, ``-`` and ``_`` alike.
Then :mod:`patchscope.probes.resolve` resolves the point in the binary chosen, as for any binary.

A bare name the kernel looks up itself is not the vmlinux's alone (Linux 6.1): ``register_kprobe``
finds it with ``kallsyms_lookup_name``, the vmlinux's symbols first, then every loaded module's
(kernel/kallsyms.c, kernel/module/kallsyms.c ``module_kallsyms_lookup_name``); and before that,
tracefs ``p:ev f``, perf probe (which writes ``f+OFFS`` there) and bpftrace's ``kprobe:f`` (the
perf_kprobe PMU, ``create_local_trace_kprobe``) count the name over the vmlinux and every loaded
module, and refuse it when it is there more than once (trace_kprobe.c ``number_of_same_symbols``:
EADDRNOTAVAIL). So a module that defines a name the vmlinux has makes such a point fail to
register while the module is loaded; a name only modules define is found in the module loaded.
``M:f`` and an address are exact, and SystemTap's ``kernel.function`` places by address.
Checked in the booted kernel with kvm loaded (tests/data/debian-6.1.0-56-amd64/modules/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from patchscope.index.tree import VMLINUX, Tree
from patchscope.probes import syntax as ps

#: Tools that count a bare name over the vmlinux and the loaded modules before probing it.
COUNTING = ("kprobe_events", "perf", "bpftrace")


@dataclass
class Route:
    point: ps.ProbePoint
    #: Names of the tree's binaries the point is resolved in (``vmlinux``, module names).
    binaries: list[str] = field(default_factory=list)
    #: Why it is resolved nowhere (one line), when ``binaries`` is empty.
    error: str | None = None
    #: What the modules that share its name do to it (one line each).
    notes: list[str] = field(default_factory=list)


def routes(tree: Tree, points: Sequence[ps.ProbePoint]) -> list[Route]:
    """Each point routed; the bare names the kernel looks up itself looked up where it looks
    (the vmlinux and every module: one pass over the tree's symbol tables for all of them)."""
    names = {n for p in points if (n := kernel_name(p))}
    image, modules = tree.holding(names)
    return [_shared(route(tree, p), image, modules) for p in points]


def kernel_name(point: ps.ProbePoint) -> str | None:
    """The function name a point hands the kernel to look up, when it hands one: a kprobe by
    name (tracefs, bpftrace's kprobe and kretprobe, perf probe, fail_function, stap's
    ``kprobe.function``) in the kernel image, not a pattern."""
    if point.target != "kernel" or not point.function or point.address is not None:
        return None
    by_name = point.tool in ("kprobe_events", "perf", "fail_function") or point.kind in ("kprobe", "kretprobe")
    if not by_name or (point.glob and any(c in point.function for c in "*?[")):
        return None
    return point.function


def _shared(r: Route, image: set[str], modules: dict[str, list[str]]) -> Route:
    name = kernel_name(r.point)
    owners = modules.get(name or "", [])
    if not name or not owners:
        return r
    counted = r.point.tool in COUNTING
    several = len(owners) > 1
    listed = ("modules " if several else "module ") + ", ".join(owners[:5])
    listed += f" and {len(owners) - 5} more" if len(owners) > 5 else ""
    if name in image:
        defines = f"{listed} define{'' if several else 's'} {name} too"
        if counted:
            r.notes.append(
                f"{defines}: while {'one of them is' if several else 'it is'} loaded the kernel refuses the name "
                "(EADDRNOTAVAIL: trace_kprobe counts it over the vmlinux and every loaded module); "
                f"{owners[0]}:{name} names the module's, an address the vmlinux's"
            )
        else:
            r.notes.append(f"{defines}: the kernel finds the vmlinux's first")
        return r
    if r.point.tool == "perf":  # perf looks in the vmlinux alone unless -m names a module
        r.notes.append(f"{name} is defined in {listed}: perf probe -m {owners[0]} {name}")
        return r
    refused = (
        "; the kernel refuses the name while two of them are loaded (EADDRNOTAVAIL)" if counted and several else ""
    )
    r.notes.append(f"{name} is not in the vmlinux: the kernel finds it in {listed} once loaded{refused}")
    return Route(r.point, owners, notes=r.notes)


def with_module(point: ps.ProbePoint, module: str | None) -> ps.ProbePoint:
    """perf probe's ``-m MODULE``: its points are looked up in that module."""
    if module and point.tool == "perf" and point.target == "kernel":
        return replace(point, target=f"module:{module}")
    return point


def route(tree: Tree, point: ps.ProbePoint) -> Route:
    kind, _, name = point.target.partition(":")
    if kind == "process":
        return Route(
            point, error=f"{point.text}: a user-space point; pass the program {name or '?'}, not a kernel tree"
        )
    if kind == "module":
        names = tree.matching(name)
        if not names:
            return Route(point, error=f"module {name} is not in the kernel tree {tree.root}")
        return Route(point, names)
    if tree.vmlinux is None:
        return Route(point, error=f"{point.text}: a point in the kernel image, and {tree.root} has no vmlinux")
    return Route(point, [VMLINUX])


def not_in_image(point: ps.ProbePoint) -> str | None:
    """A module's point checked against a vmlinux alone: the kernel's own functions of the same
    name are not the module's, so it resolves nowhere (one line)."""
    kind, _, name = point.target.partition(":")
    if kind == "module":
        return f"module {name} is not in this binary — pass the kernel tree"
    return None
