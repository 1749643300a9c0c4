"""patchscope's Rust core (``core/src/python.rs``): one binary opened once, and the values of
its tables' coded columns. Every query returns the same shape of dict::

    {"info": {str: str}, "strings": (offsets: bytes, data: bytes),
     "tables": {table: {column: (dtype: str, data: bytes)}}}

(``patchscope.index.tables.Columns.from_core`` reads it). ``u64`` inputs are a list of ints
or the bytes of a NumPy ``uint64`` array (``.tobytes()``).
"""

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Final, TypeAlias, TypedDict

__version__: Final[str]

_Path: TypeAlias = str | PathLike[str]
_U64s: TypeAlias = bytes | list[int]
#: A column: its NumPy dtype (``"u8"``, ``"i8"`` …) or ``"str"``, and its data.
_Column: TypeAlias = tuple[str, bytes]

class _Answer(TypedDict):
    """The dict every query returns (see the module's docstring)."""

    info: dict[str, str]
    strings: tuple[bytes, bytes]
    tables: dict[str, dict[str, _Column]]

class CoreError(Exception):
    """The binary cannot be read as asked; the message is one line for a person."""

class Binary:
    """A binary, its separate debug file and its dwz supplementary file, found once
    (``debug_roots``: where build-id trees are looked for, ``/usr/lib/debug`` by default)."""

    def __new__(
        cls, path: _Path, debug_file: _Path | None = None, debug_roots: Sequence[_Path] | None = None
    ) -> Binary: ...
    @property
    def path(self) -> Path: ...
    @property
    def debug_file(self) -> Path | None: ...
    @property
    def debug_file_found_by(self) -> str | None:
        """``given``, ``build-id under ROOT``, ``debuglink beside the binary``,
        ``debuglink in .debug/`` or ``debuglink under ROOT``."""
    @property
    def sup_file(self) -> Path | None: ...
    @property
    def sup_file_found_by(self) -> str | None:
        """``altlink path`` or ``build-id under ROOT``."""
    @property
    def build_id(self) -> str | None: ...
    @property
    def debug_build_id(self) -> str | None: ...
    def identify(self) -> dict[str, str]:
        """What the cache key needs besides the content: the build-ids, and the paths of the
        debug and supplementary files."""
    def content(self) -> str:
        """The CRC-32 of the three files' bytes (hex, joined by ``-``)."""
    def scan(self) -> _Answer:
        """Every table: sections, symbols, kernel tables, DWARF units, subprograms, …"""
    def variables(self, scopes: _U64s) -> _Answer:
        """Tables ``variables`` and ``blocks`` of scopes (DIEs); info ``scopes``, ``found``, ``errors``."""
    def code_facts(self, function_ids: _U64s, lows: _U64s, highs: _U64s) -> _Answer:
        """Tables ``code_ranges`` and ``code_events`` of function ranges."""
    def instructions(self, low: int, high: int) -> _Answer:
        """Table ``insns`` of ``[low, high)``."""
    def instructions_of(self, lows: _U64s, highs: _U64s) -> _Answer:
        """Table ``insns`` of many ranges, each decoded from its low end, with ``range``: the
        index of its range."""
    def probe_sites(self, starts: _U64s, addresses: _U64s) -> _Answer:
        """Table ``probe_sites``: the instruction holding each address, decoding from its start."""
    def liveness(
        self,
        function_ids: _U64s,
        lows: _U64s,
        highs: _U64s,
        returns: _U64s,
        ids: _U64s,
        addresses: _U64s,
        regs: _U64s,
    ) -> _Answer:
        """Table ``liveness``: whether each query's register is read before it is overwritten;
        ``returns[id]``: what function ``id`` returns (``result``)."""
    def result_classes(self, functions: _U64s) -> _Answer:
        """Table ``results`` (class: ``result``): what each subprogram DIE's function returns."""
    def fingerprints(self, function_ids: _U64s, lows: _U64s, highs: _U64s) -> _Answer:
        """Table ``code_fingerprints``: one CRC-32 per range, the first range of an id its entry."""
    def normal_form(self, low: int, high: int, entry: bool = True) -> _Answer:
        """Table ``normal_form`` of ``[low, high)``; ``info["fingerprint"]``."""
    def plt_names(self) -> _Answer:
        """Table ``plt_names`` (address, name, got): PLT stubs (``got`` 0) and GOT slots (``got``
        1) by the symbol their dynamic relocation names."""

    def function_pointers(self) -> _Answer:
        """Table ``function_pointers`` (at, value, section): every aligned word of an allocated,
        non-code section holding a function symbol's address (relocated by the image's own
        ``R_*_RELATIVE`` relocations where the file holds zero)."""

def clone_shape(name: str) -> str:
    """``foo.isra.3.cold`` → ``foo.isra.cold``: a symbol name without the numbers a compiler
    gives clones and statics (and without ``.llvm.<hash>``), as the fingerprints name symbols."""

def crc32_files(paths: list[str]) -> list[tuple[int, int] | None]:
    """``(size, crc32)`` of each file, hashed in parallel; None for a file that cannot be read."""

#: ``target`` of no target (code tables).
NO_TARGET: Final[int]
#: An absent DIE reference.
NO_DIE: Final[int]
#: The bit of a DIE offset in the dwz supplementary file.
SUP_BIT: Final[int]
#: ``loc_reg`` / ``reg`` of no register.
NO_REG: Final[int]

class kind:
    """``kind`` of ``code_events`` and ``insns`` (core: ``code::kind``)."""

    OTHER: Final[int]
    RETURN: Final[int]
    TAIL_JUMP_DIRECT: Final[int]
    TAIL_JUMP_INDIRECT: Final[int]
    CALL_DIRECT: Final[int]
    CALL_INDIRECT: Final[int]
    JUMP_TO_ENTRY: Final[int]
    LL: Final[int]
    SC: Final[int]
    LSE_ATOMIC: Final[int]
    ORDERED: Final[int]
    TM_BEGIN: Final[int]
    TM_END: Final[int]
    TM_ABORT: Final[int]
    TM_TEST: Final[int]
    TM_OTHER: Final[int]
    HLE: Final[int]
    TRAP: Final[int]
    ENDBR: Final[int]
    LOCAL_ENTRY: Final[int]
    ENTRY_NOPS: Final[int]
    NOP: Final[int]
    JUMP: Final[int]
    JUMP_INDIRECT: Final[int]
    ERROR: Final[int]

class flag:
    """Bits of ``extra`` of branches and atomics (core: ``code::flag``)."""

    CONDITIONAL: Final[int]
    THUNK: Final[int]
    SLOT: Final[int]
    AUTH: Final[int]
    EXTERNAL: Final[int]
    ALT_LINK: Final[int]
    FAR: Final[int]
    THUMB: Final[int]
    SIZE_MASK: Final[int]
    ACQUIRE: Final[int]
    RELEASE: Final[int]
    PAIR: Final[int]
    K_LOAD_EX: Final[int]
    K_STORE_EX: Final[int]
    K_EXCLUSIVE: Final[int]
    XACQUIRE: Final[int]
    XRELEASE: Final[int]

class trap:
    """``extra & 0xff`` of a TRAP event (core: ``code::trap``)."""

    UNDEFINED: Final[int]
    BREAKPOINT: Final[int]
    INTERRUPT: Final[int]
    CONDITIONAL: Final[int]

class status:
    """Bits of ``code_ranges.status`` (core: ``code::status``)."""

    NO_BYTES: Final[int]
    TRUNCATED: Final[int]
    INTERNAL: Final[int]

class site_status:
    """Bits of ``probe_sites.status`` (core: ``code::site_status``)."""

    NO_BYTES: Final[int]
    DECODE_ERROR: Final[int]
    BAD_START: Final[int]

class live_status:
    """Bits of ``liveness.status`` (core: ``code::liveness::live_status``)."""

    NOT_INSN: Final[int]
    UNSUPPORTED: Final[int]
    UNFOLLOWED: Final[int]
    CALLERS: Final[int]

class result:
    """What a function returns, as the calling conventions place it (core:
    ``dwarf::types::result``)."""

    UNKNOWN: Final[int]
    VOID: Final[int]
    INTEGER: Final[int]
    FLOAT: Final[int]

class live_query:
    """A ``liveness`` query's ``regs`` value for a frame slot: ``SLOT`` | the offset from the
    CFA (32 bits, signed) | the size in bytes << 32 (core: ``code::liveness::query``)."""

    SLOT: Final[int]

class how:
    """``normal_form.how``: what the fingerprint made of a field (core: ``code::fingerprint::how``)."""

    RAW: Final[int]
    SYMBOL: Final[int]
    LOCAL: Final[int]
    STRING: Final[int]
    MASKED: Final[int]
    SKIPPED: Final[int]

class location_kind:
    """``params.loc_kind`` and ``variables.kind`` (core: ``dwarf::location::kind``)."""

    NONE: Final[int]
    REGISTER: Final[int]
    MEMORY: Final[int]
    ENTRY_VALUE: Final[int]
    PARAM_REF: Final[int]
    CONSTANT: Final[int]
    COMPUTED: Final[int]
    COMPOSITE: Final[int]
    NOT_AT_ENTRY: Final[int]
    IMPLICIT_POINTER: Final[int]
    ERROR: Final[int]

class location_flag:
    """Bits of ``params.loc_flags`` and ``variables.flags`` (core: ``dwarf::location::flag``)."""

    #: Given by a location list.
    LIST: Final[int]
    #: Bound only in a location view of ``low`` (``low == high``).
    VIEW_ONLY: Final[int]
    #: Memory at the frame base + value.
    FRAME_BASE: Final[int]
    #: Memory at the static address value.
    STATIC: Final[int]
    #: In pieces, one of which has no location.
    PIECE_MISSING: Final[int]
    #: The first operation names a register or an address: what perf probe reads. Variables only.
    LEADS_WITH_PLACE: Final[int]
    #: The value is ``DW_AT_const_value``, not an expression's literal. Variables only.
    CONST_VALUE: Final[int]

class spflag:
    """Bits of ``subprograms.flags`` (core: ``dwarf::spflag``)."""

    EXTERNAL: Final[int]
    DECLARATION: Final[int]
    ARTIFICIAL: Final[int]
    NORETURN: Final[int]
    HAS_CODE: Final[int]
    PROTOTYPED: Final[int]
    #: ``DW_AT_inline`` other than ``DW_INL_not_inlined`` (libdw's ``dwarf_func_inline`` != 0).
    INLINE: Final[int]

class lineflag:
    """Bits of ``lines.flags`` (core: ``dwarf::lineflag``)."""

    IS_STMT: Final[int]
    #: A row that ends a sequence: its address is past the code.
    END_SEQUENCE: Final[int]
    PROLOGUE_END: Final[int]
    EPILOGUE_BEGIN: Final[int]
    BASIC_BLOCK: Final[int]

class symkind:
    """``symbols.kind`` (core: ``elf::symkind``)."""

    OTHER: Final[int]
    FUNC: Final[int]
    OBJECT: Final[int]
    SECTION: Final[int]
    FILE: Final[int]
    TLS: Final[int]
    NOTYPE: Final[int]

class suffix:
    """Bits of ``symbols.suffix_kinds`` (core: ``elf::suffix``)."""

    COLD: Final[int]
    PART: Final[int]
    ISRA: Final[int]
    CONSTPROP: Final[int]
    LTO_PRIV: Final[int]
    LLVM: Final[int]
    LOCALALIAS: Final[int]
    CLONE: Final[int]
    OTHER: Final[int]
