"""Whether a write takes: the band-aid's ``$var = v`` (SystemTap, guru mode), ``$return = v``,
gdb's ``set var`` — judged at an address from the location lists and the machine code.

SystemTap compiles a write to a target variable into a store to the location the DWARF gives
at the probe address (``tapsets.cxx``, ``dwarf_var_expanding_visitor::visit_target_symbol``
with ``lvalue``; ``loc2stap.cxx`` refuses what has no lvalue: "cannot write to member …
computed value"). Whether the program then *sees* the store is another matter, which this
module decides:

- *not writable*: the variable has no location a store changes there — a constant, a value
  computed from others (``DW_OP_stack_value``), the caller's value (``DW_OP_entry_value``), an
  implicit pointer, nothing at all, or a value in pieces one of which is gone;
- *no effect*: it is in a register that no path reads before overwriting it or leaving the
  function (the core's liveness over the instance's code, ``core/src/code/liveness.rs``): GCC's
  location lists keep naming a register after the variable's last use, until something else
  is put there;
- *spills over*: other variables, or parameters of inlined callees, are in the same register
  at that address (one value, several names — common subexpressions, copies): the store
  changes them all; or the function never writes the register and a direct caller, compiled
  with GCC's ``-fipa-ra``, keeps its own value there across the call and reads it after;
- *takes*: some path reads the register before it changes.

A variable in its frame slot (``DW_OP_fbreg``, on x86_64: GCC's frame base is the CFA) is
judged the same way, from the slot's liveness (the core follows %rsp and %rbp and the loads and
stores of the slot; a frame whose address escapes is read by every call). Other memory (a
static, a slot addressed from another register) is not followed: a store there is unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import pyarrow as pa

from patchscope import _core
from patchscope.index.abi import reg_name
from patchscope.index.context import Context
from patchscope.index.variables import variables_at_table
from patchscope.rules.finding import Band, Code, code, hexa

WRITE_NOT_WRITABLE = code(
    "write-not-writable",
    Band.HAZARDOUS,
    "a write to the variable cannot take at the probed address: it has no location a store changes "
    "(a constant, a computed value, only the caller's entry value, an implicit pointer, "
    "optimized out, a piece missing)",
)
WRITE_NO_EFFECT = code(
    "write-no-effect",
    Band.HAZARDOUS,
    "the variable's register (or frame slot) is not read again before it is overwritten or the function leaves: "
    "the write changes nothing",
)
WRITE_SPILLS_OVER = code(
    "write-spills-over",
    Band.HAZARDOUS,
    "other variables, or parameters of inlined callees, are in the same register there: the write changes them too",
)
WRITE_PARTIAL = code(
    "write-partial",
    Band.GRAY,
    "the write takes at some of the places the probe fires and not at others, or only for some callers",
)

#: Verdicts of one write at one address.
TAKES, NO_EFFECT, NOT_WRITABLE, SPILLS_OVER, UNCHECKED = (
    "takes",
    "no-effect",
    "not-writable",
    "spills-over",
    "unchecked",
)
#: ``$return = v`` read by some callers only.
PARTIAL = "partial"
#: The code of each verdict that is a finding.
CODE_OF: dict[str, Code] = {
    NO_EFFECT: WRITE_NO_EFFECT,
    NOT_WRITABLE: WRITE_NOT_WRITABLE,
    SPILLS_OVER: WRITE_SPILLS_OVER,
    PARTIAL: WRITE_PARTIAL,
}

#: Why a variable in each state has nothing a store changes.
NOT_WRITABLE_WHY = {
    "constant": "is a constant there (the compiler folded it): there is nothing to store into",
    "computed": "is computed from other values there (DW_OP_stack_value): it has no storage",
    "entry-value-only": "exists only as the caller's value at the call (DW_OP_entry_value): no storage of its own",
    "parameter-ref": "is a parameter the IPA-SRA clone no longer has (DW_OP_GNU_parameter_ref)",
    "implicit-pointer": "is a pointer to a value that is not in memory (DW_OP_implicit_pointer)",
    "optimized-out": "has no location at this address (optimized out)",
    "out-of-scope": "is not in scope at this address",
    "pieces-missing": "is in pieces of which one has no location: part of the value is gone",
    "unreadable": "has a location expression that cannot be decoded",
}

#: Bytes of the scalar types whose frame slot is followed (LP64); a pointer is 8.
SLOT_BYTES = {
    "char": 1,
    "signed char": 1,
    "unsigned char": 1,
    "_Bool": 1,
    "short int": 2,
    "short unsigned int": 2,
    "int": 4,
    "unsigned int": 4,
    "long int": 8,
    "long unsigned int": 8,
    "long long int": 8,
    "long long unsigned int": 8,
}


def slot_query(offset: int, type_name: str) -> int | None:
    """The core's liveness query for a frame slot at CFA + ``offset`` holding ``type_name``,
    or ``None`` when the type's size is not known."""
    bare = " ".join(w for w in type_name.split() if w not in ("volatile", "const"))
    size = 8 if bare.endswith("*") else SLOT_BYTES.get(bare)
    if size is None:
        return None
    return int(_core.live_query.SLOT) | (offset & 0xFFFF_FFFF) | size << 32


#: The DWARF register that carries an integer return value.
RETURN_REG = {"x86_64": 0, "aarch64": 0, "ppc64le": 3, "ppc64": 3, "riscv64": 10}


@dataclass
class WriteVerdict:
    """What a write to one variable at one address would do."""

    verdict: str
    why: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "why": self.why, **({"evidence": self.evidence} if self.evidence else {})}


_NO_SITES = np.zeros(0, np.int64)


def _instance_scopes(cx: Context) -> dict[int, np.ndarray]:
    """The inline sites' DIEs of each concrete instance's DIE, in the sites' order."""
    functions = cx.sites.column("function").to_numpy()
    order = np.argsort(functions, kind="stable")
    keys, starts = np.unique(functions[order], return_index=True)
    return dict(zip(keys.tolist(), np.split(cx.sites.column("die").to_numpy()[order], starts[1:])))


def variable_writes(cx: Context, places: list[tuple[int, int, int]]) -> list[dict[str, WriteVerdict]]:
    """For each place (instance row, scope DIE, address): every variable of the scope, by name,
    and what a write to it there would do. The other scopes at the address (the instance and
    its inline sites) are read too: their variables may share a register with the scope's."""
    sites = cx.shared(_instance_scopes)
    pairs: list[tuple[int, int]] = []
    owner: list[tuple[int, bool]] = []  # (place, is the place's own scope)
    for k, (row, scope, address) in enumerate(places):
        if scope == _core.NO_DIE:
            continue
        inst_die = int(cx.inst_die[row]) if row >= 0 else _core.NO_DIE
        others = [] if inst_die == _core.NO_DIE else [inst_die, *sites.get(inst_die, _NO_SITES).tolist()]
        for s in dict.fromkeys([scope, *others]):
            pairs.append((s, address))
            owner.append((k, s == scope))
    out: list[dict[str, WriteVerdict]] = [{} for _ in places]
    if not pairs:
        return out
    t = variables_at_table(cx.b, pairs)
    # the other scopes matter only where they hold a register
    is_own = np.array([o[1] for o in owner], bool)[t.column("pair").to_numpy()]
    t = t.filter(pa.array(is_own | (t.column("kind").to_numpy() == _core.location_kind.REGISTER)))
    place = [owner[p][0] for p in cast("list[int]", t.column("pair").to_pylist())]
    own = [owner[p][1] for p in cast("list[int]", t.column("pair").to_pylist())]
    die = cast("list[int]", t.column("die").to_pylist())
    name = cast("list[str]", t.column("name").to_pylist())
    state = cast("list[str]", t.column("state").to_pylist())
    reg = cast("list[int]", t.column("reg").to_pylist())
    locations = cast("list[list[str]]", t.column("locations").to_pylist())
    in_register = np.flatnonzero(t.column("kind").to_numpy() == _core.location_kind.REGISTER).tolist()
    registered = set(in_register)  # asked of every row: a list would make the loop below quadratic
    asked = {r: reg[r] for r in in_register}
    if cx.arch == "x86_64":
        asked.update(_frame_slots(t, own))
    live = dict(zip(asked, _liveness(cx, [(places[place[r]], q) for r, q in asked.items()])))
    _ask_callers(cx, live, {r: (places[place[r]][0], asked[r]) for r, lv in live.items() if lv.callers})
    by_reg: dict[tuple[int, int], list[int]] = {}
    for r in in_register:
        by_reg.setdefault((place[r], reg[r]), []).append(r)
    for r in range(t.num_rows):
        k = place[r]
        if not own[r] or name[r] in out[k]:
            continue
        sharing = {name[o] for o in by_reg.get((k, reg[r]), []) if die[o] != die[r]} if r in registered else set()
        out[k][name[r]] = judge(name[r], state[r], locations[r], live.get(r), sorted(sharing))
    return out


def _frame_slots(t: pa.Table, own: list[bool]) -> dict[int, int]:
    """The rows of the place's own variables in a frame slot, with their slot queries."""
    kind, flags = t.column("kind").to_numpy(), t.column("flags").to_numpy()
    rows = np.flatnonzero((kind == _core.location_kind.MEMORY) & ((flags & _core.location_flag.FRAME_BASE) != 0))
    value, types = t.column("value").to_numpy(), t.column("type")
    out: dict[int, int] = {}
    for r in rows.tolist():
        q = slot_query(int(value[r]), str(types[r])) if own[r] else None
        if q is not None:
            out[r] = q
    return out


@dataclass(frozen=True)
class Liveness:
    """The core's answer for one register at one address."""

    live: bool
    reader: int | None
    writer: int | None
    #: some path reaches code that could not be followed, where everything counts as read
    unfollowed: bool
    #: the architecture is not analysed
    unsupported: bool
    #: live only because the function leaves with the register unwritten (``CALLERS``)
    callers: bool = False
    #: the direct callers that read it after their call (``symbol (address)``)
    caller_reads: tuple[str, ...] = ()


def _liveness(cx: Context, queries: list[tuple[tuple[int, int, int], int]]) -> list[Liveness]:
    if not queries:
        return []
    rows = np.array([q[0][0] for q in queries], np.int64)
    ok = rows >= 0
    t = cx.liveness(
        np.where(ok, rows, 0).astype(np.uint64),
        np.array([q[0][2] for q in queries], np.uint64),
        np.array([q[1] for q in queries], np.uint64),
    )
    none = _core.NO_TARGET
    column = {n: cast("list[int]", t.column(n).to_pylist()) for n in ("live", "reader", "writer", "status")}
    return [
        Liveness(
            bool(live) or not good,
            reader if reader != none else None,
            writer if writer != none else None,
            bool(status & _core.live_status.UNFOLLOWED),
            bool(status & (_core.live_status.UNSUPPORTED | _core.live_status.NOT_INSN)) or not good,
            bool(status & _core.live_status.CALLERS),
        )
        for live, reader, writer, status, good in zip(
            column["live"],
            column["reader"],
            column["writer"],
            column["status"],
            ok.tolist(),
        )
    ]


def _ask_callers(cx: Context, live: dict[int, Liveness], asked: dict[int, tuple[int, int]]) -> None:
    """Settles the answers live only because the function leaves with the register unwritten
    (``asked``: row -> (instance, register)). GCC's ``-fipa-ra`` lets a caller in the same unit
    keep its own value in a caller-saved register across a direct call to a function that never
    writes it; the callers' code shows whether one does: it reads the register after the call
    without setting it. Such a caller sees the write; when none does, the write changes nothing.
    A caller that itself leaves with the register unwritten is taken to read it, and so is a
    function that tail-jumps here (its callers' code is not followed)."""
    queries: list[tuple[tuple[int, int, int], int]] = []
    owner: list[tuple[int, str]] = []
    reads: dict[int, list[str]] = {}
    for r, (instance, reg) in asked.items():
        entry = cx.inst_low(instance)
        for jumper, at, _ in _jumps_to(cx, entry, _core.kind.TAIL_JUMP_DIRECT):
            via = f"the callers of {cx.instance_symbol(jumper)} (it tail-jumps here at {hexa(at)})"
            reads.setdefault(r, []).append(via)
        for caller, at, size in _jumps_to(cx, entry, _core.kind.CALL_DIRECT):
            queries.append(((caller, 0, at + size), reg))
            owner.append((r, f"{cx.instance_symbol(caller)} ({hexa(at + size)})"))
    for (r, where), lv in zip(owner, _liveness(cx, queries)):
        if lv.live:
            reads.setdefault(r, []).append(where)
    for r in asked:
        lv = live[r]
        live[r] = replace(lv, live=r in reads, caller_reads=tuple(reads.get(r, ())), writer=None)


def _jumps_to(cx: Context, entry: int, kind: int) -> list[tuple[int, int, int]]:
    """(instance, address, size) of every branch of ``kind`` (a direct call or tail jump)
    whose target is ``entry``."""
    ev = cx.machine.events
    at = np.flatnonzero((ev.column("kind").to_numpy() == kind) & (ev.column("target").to_numpy() == entry))
    columns = [ev.column(n).to_numpy()[at].tolist() for n in ("function_id", "address", "size")]
    return list(zip(*columns))


def judge(name: str, state: str, locations: list[str], live: Liveness | None, sharing: list[str]) -> WriteVerdict:
    """The verdict of a write to ``name`` (in ``state`` at ``locations``) at one address."""
    where = locations[0] if locations else ""
    if state in NOT_WRITABLE_WHY:
        return WriteVerdict(NOT_WRITABLE, f"{name} {NOT_WRITABLE_WHY[state]}", {"state": state, "locations": locations})
    if state not in ("register", "memory") or live is None or live.unsupported:
        return WriteVerdict(
            UNCHECKED, f"{name} is in {where or state}: whether the code reads it again is not analysed"
        )
    holder = "register" if state == "register" else "slot"
    if not live.live:
        then = (
            f"overwritten at {hexa(live.writer)}"
            if live.writer is not None
            else "never read again before the function leaves"
            + (", nor by a direct caller after its call" if live.callers else "")
        )
        return WriteVerdict(
            NO_EFFECT,
            f"{name} is in {where}, which is {then}: a write there changes nothing",
            {holder: where, "overwritten_at": hexa(live.writer) if live.writer is not None else None},
        )
    if sharing:
        return WriteVerdict(
            SPILLS_OVER,
            f"{where} holds {', '.join(sharing)} as well as {name}: a write to {name} changes them too",
            {
                "register": where,
                "shared_with": sharing,
                "read_at": hexa(live.reader) if live.reader is not None else None,
            },
        )
    if live.caller_reads:
        return WriteVerdict(
            SPILLS_OVER,
            f"{name} is in {where}, which this function never writes and leaves unread at "
            f"{_hex(live.reader)}, and a caller keeps its own value there across the call (GCC's -fipa-ra): "
            f"{', '.join(live.caller_reads[:4])} — the write changes the caller's",
            {"register": where, "left_at": _hex(live.reader), "callers_reading": list(live.caller_reads)},
        )
    read = f"read at {hexa(live.reader)}" if live.reader is not None else "read later"
    if live.unfollowed:
        read += " (code the analysis cannot follow: assumed read)"
    return WriteVerdict(TAKES, f"{name} is in {where}, {read}", {holder: where, "read_at": _hex(live.reader)})


def _hex(a: int | None) -> str | None:
    return hexa(a) if a is not None else None


#: Clones GCC makes only of functions whose every caller it sees: no call through a pointer.
_CLONES = _core.suffix.ISRA | _core.suffix.CONSTPROP | _core.suffix.PART


def return_write(cx: Context, instance: int) -> WriteVerdict:
    """What ``$return = v`` at the returns of ``instance`` does: the callers that read the
    return register after their call see it; those that do not, do not. Only a clone's callers
    are all known: a function reached through a pointer or a tail jump may have callers that
    read it, so there "every direct caller ignores it" is partial, not no effect."""
    reg = RETURN_REG.get(cx.arch)
    entry = cx.inst_low(instance)
    calls = [(caller, at + size) for caller, at, size in _jumps_to(cx, entry, _core.kind.CALL_DIRECT)]
    if reg is None or not calls:
        return WriteVerdict(UNCHECKED, "no direct call to it in this binary: who reads the return value is not known")
    found = _liveness(cx, [((c, 0, after), reg) for c, after in calls])
    ignore = [f"{cx.instance_symbol(c)} ({hexa(after)})" for (c, after), lv in zip(calls, found) if not lv.live]
    name = reg_name(cx.arch, reg)
    tails = len(_jumps_to(cx, entry, _core.kind.TAIL_JUMP_DIRECT))
    all_known = bool(cx.inst_suffix_kinds[instance] & _CLONES) and tails == 0
    if len(ignore) == len(found) and all_known:
        return WriteVerdict(
            NO_EFFECT,
            f"none of its {len(found)} caller(s) reads %{name} after the call: the return value is ignored",
            {"callers_ignoring": ignore},
        )
    if ignore:
        unknown = "" if all_known else "; callers through a pointer or a tail jump are not known"
        return WriteVerdict(
            PARTIAL,
            f"{len(ignore)} of its {len(found)} direct call site(s) ignore the return value: "
            f"{', '.join(ignore[:6])}{unknown}",
            {"callers_ignoring": ignore, "tail_jumps_to_it": tails},
        )
    return WriteVerdict(TAKES, f"every one of its {len(found)} call site(s) reads %{name} after the call")


# -- what a type can take (the handler's bad writes) ---------------------------------------------

#: Architectures whose plain ``char`` is signed (the psABIs: the others make it unsigned).
SIGNED_CHAR_ARCHES = frozenset({"x86_64", "i386", "i686"})
#: Architectures with 32-bit ``long`` and pointers (ILP32); the others are LP64.
ILP32_ARCHES = frozenset({"arm", "i386", "i686", "ppc", "riscv32", "mips"})

#: Integer types by the name the DWARF spells them with (base types as GCC names them, and the
#: typedefs of the kernel and of <stdint.h> that nobody redefines): (bytes, signed); a byte
#: count of 0 is ``long``'s, ``None`` signedness plain ``char``'s.
INTEGER_TYPES: dict[str, tuple[int, bool | None]] = {
    "char": (1, None),
    "signed char": (1, True),
    "unsigned char": (1, False),
    "short int": (2, True),
    "short unsigned int": (2, False),
    "int": (4, True),
    "unsigned int": (4, False),
    "long int": (0, True),
    "long unsigned int": (0, False),
    "long long int": (8, True),
    "long long unsigned int": (8, False),
    "size_t": (0, False),
    "ssize_t": (0, True),
    **{f"{p}{b}": (b // 8, p.endswith("s")) for b in (8, 16, 32, 64) for p in ("u", "s", "__u", "__s")},
    **{f"{p}int{b}_t": (b // 8, p == "") for b in (8, 16, 32, 64) for p in ("", "u")},
}
#: Types that hold only 0 and 1.
BOOL_TYPES = frozenset({"_Bool", "bool"})
#: Scalars that are no integer a handler can store (stap's values are 64-bit integers).
OTHER_SCALARS = frozenset({"float", "double", "long double", "void"})
_QUALIFIERS = (" const", " volatile", " restrict")


def _unqualified(type_name: str) -> str:
    """The type without the qualifiers of its outermost level (``char const*`` stays)."""
    name = type_name.strip()
    while name.endswith(_QUALIFIERS):
        name = name.rsplit(" ", 1)[0]
    return name


def is_scalar(type_name: str) -> bool:
    """A type known to be a number: an integer, a boolean, a float or an enumeration."""
    name = _unqualified(type_name)
    return name in INTEGER_TYPES or name in BOOL_TYPES or name in OTHER_SCALARS or name.startswith("enum ")


def has_members(type_name: str) -> bool | None:
    """Whether ``$x->f`` (stap's ``->`` is also C's ``.``) can name a field of ``type_name``: a
    struct or union, or a pointer to one; not a number nor a pointer to one; ``None`` when the
    spelling does not say (a typedef, a pointer to a pointer)."""
    name = _unqualified(type_name)
    if name.startswith(("struct ", "union ", "class ")):
        return True
    if name.endswith("*") and not name.endswith("**"):
        pointee = _unqualified(name[:-1])
        return True if pointee.startswith(("struct ", "union ", "class ")) else (False if is_scalar(pointee) else None)
    return False if is_scalar(name) else None


def is_aggregate(type_name: str) -> bool:
    """A struct or union held by value: stap writes only its scalar members ("is being accessed
    instead of a member")."""
    name = _unqualified(type_name)
    return name.startswith(("struct ", "union ", "class ")) and not name.endswith(("*", "]"))


def indexable(type_name: str) -> bool | None:
    """Whether ``$x[i]`` can index ``type_name``: a pointer or an array; not a number, a struct
    or a union; ``None`` when the spelling does not say."""
    name = _unqualified(type_name)
    if name.endswith(("*", "[]")):
        return True
    return False if is_scalar(name) or name.startswith(("struct ", "union ")) else None


def integer_range(type_name: str, arch: str) -> tuple[int, int] | None:
    """The values an integer, boolean or pointer type holds on ``arch``; ``None`` when the
    spelling does not say (a typedef, an enumeration, a struct)."""
    name = _unqualified(type_name)
    word = 4 if arch in ILP32_ARCHES else 8
    if name.endswith("*"):
        return 0, (1 << (8 * word)) - 1
    if name in BOOL_TYPES:
        return 0, 1
    if name not in INTEGER_TYPES:
        return None
    size, signed = INTEGER_TYPES[name]
    bits = 8 * (size or word)
    if signed is None:
        signed = arch in SIGNED_CHAR_ARCHES
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def does_not_fit(type_name: str, value: int, hex_digits: bool, arch: str) -> str | None:
    """Why the literal ``value`` does not fit ``type_name`` on ``arch``, or ``None`` when it
    does (or the type is not known). A hex literal may give a signed type's bit pattern
    (``0xff`` for a ``char``), as C programmers write masks; a decimal one must be a value of
    the type: stap stores the low bytes, and 300 in a ``char`` would be 44."""
    span = integer_range(type_name, arch)
    if span is None:
        return None
    low, high = span
    if hex_digits and low < 0:
        high = 2 * high + 1
    if low <= value <= high:
        return None
    return f"{value} does not fit in {_unqualified(type_name)} ({low} to {high} on {arch})"
