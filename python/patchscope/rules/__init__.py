"""The rules: one module per topic of the spectrum, each a list of functions from a
:class:`~patchscope.index.context.Context` to findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from patchscope.index.binary import Binary
from patchscope.index.cache import derived_product
from patchscope.index.context import Context
from patchscope.rules import (  # noqa: F401  (points, override, writes: their codes are part of the vocabulary)
    atomics,
    clones,
    entry,
    inlining,
    kernel,
    machinery,
    names,
    override,
    peers,
    points,
    refused,
    returns,
    verdict,
    writes,
)
from patchscope.rules.finding import CODES, Band, Code, Finding, to_table

Rule = Callable[[Context], Iterable[Finding]]

RULES: list[Rule] = [
    *clones.RULES,
    *inlining.RULES,
    *names.RULES,
    *entry.RULES,
    *returns.RULES,
    *kernel.RULES,
    *refused.RULES_SCAN,
    *atomics.RULES,
    *machinery.RULES,
    *peers.RULES,
]

__all__ = ["CODES", "RULES", "Band", "Code", "Finding", "Findings", "findings", "run"]


def run(cx: Context, rules: list[Rule] | None = None) -> pa.Table:
    """Every finding of ``rules`` (default: all) on one binary."""

    def each() -> Iterator[Finding]:
        for rule in rules or RULES:
            yield from rule(cx)

    return to_table(each())


@derived_product
@dataclass
class Findings:
    """Every finding of a binary, and the band of each source function."""

    findings: pa.Table
    bands: pa.Table


def findings(binary: Binary) -> Findings:
    """All rules on ``binary``, kept in its cache entry once computed."""

    def build() -> Findings:
        table = run(Context(binary))
        return Findings(table, verdict.function_bands(binary.inventory.functions, table))

    return binary.derived("findings", build)
