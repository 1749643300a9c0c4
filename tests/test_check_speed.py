"""The shortcuts that make ``check`` of many points fast give the answers of the slow ways."""

from __future__ import annotations

import difflib
import random

import pytest

from patchscope.probes.resolve import _could_be_close


@pytest.mark.parametrize("seed", range(5))
def test_the_quick_ratio_prefilter_keeps_difflib_s_answer(seed: int) -> None:
    rng = random.Random(seed)
    names = sorted({"".join(rng.choice("abcdefgh_.") for _ in range(rng.randint(1, 24))) for _ in range(5000)})
    for _ in range(20):
        word = "".join(rng.choice("abcdefgh_.") for _ in range(rng.randint(1, 24)))
        for cutoff in (0.6, 0.75, 0.9):
            kept = _could_be_close(word, names, cutoff)
            assert set(kept) <= set(names)
            whole = difflib.get_close_matches(word, names, n=4, cutoff=cutoff)
            assert difflib.get_close_matches(word, kept, n=4, cutoff=cutoff) == whole


def test_kallsyms_ignored_names_at_once_as_one_by_one() -> None:
    import pyarrow as pa

    from patchscope.rules.kernel import _kallsyms_ignored, _kallsyms_ignores

    names = ["L0", "L01", "$x", ".Lfoo", "__crc_a", "foo_veneer", "a.long_branch.b", "normal", "__kstrtab_x", ""]
    assert _kallsyms_ignored(pa.array(names, pa.large_string())).tolist() == [_kallsyms_ignores(n) for n in names]
