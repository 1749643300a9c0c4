"""Predictions against a booted kernel: probes armed under QEMU on Debian's 6.1.0-56 kernels
(tests/data/kprobes-armed-6.1.0-56: the script, the probe sets and the guests' output, per
architecture). For each probe patchscope predicts refused / recurses / missed / fine; the
kernel's answer is the definition's error, a hang or crash, and the hit and miss counts of
``kprobe_profile``."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

import patchscope
from conftest import ROOT, vmlinux_path
from patchscope.index.context import Context

DATA = ROOT / "tests/data/kprobes-armed-6.1.0-56"
ARCHES = ("amd64", "arm64")


def experiment() -> ModuleType:
    spec = importlib.util.spec_from_file_location("experiment", DATA / "experiment.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["experiment"] = mod
    spec.loader.exec_module(mod)
    return mod


def observed(arch: str) -> dict[str, tuple[str, int, int]]:
    """Event → (the kernel's verdict, hits, missed), over every boot of ``arch``."""
    ex = experiment()
    out = {}
    for log in sorted((DATA / "logs" / arch).glob("*.log")):
        seen = ex.outcomes(log.read_text())
        fired = seen["trig"].hits
        for event, o in seen.items():
            if event not in ("trig", "late"):
                out[event] = (o.verdict(fired), o.hits, o.missed)
    return out


@pytest.mark.parametrize("arch", ARCHES)
def test_every_boot_completed_and_the_trigger_fired(arch: str) -> None:
    ex = experiment()
    logs = sorted((DATA / "logs" / arch).glob("*.log"))
    assert {log.stem for log in logs} == set(ex.SETS[arch])
    for log in logs:
        seen = ex.outcomes(log.read_text())
        assert seen["trig"].completed and seen["trig"].hits > 0 and not seen["trig"].warnings, log.name
    assert {p.event for ps in ex.SETS[arch].values() for p in ps} == set(observed(arch))


@pytest.mark.parametrize("arch", ARCHES)
def test_the_sets_are_what_the_script_writes(arch: str) -> None:
    ex = experiment()
    for name, probes in ex.SETS[arch].items():
        lines = (DATA / "sets" / arch / f"{name}.probes").read_text().splitlines()
        assert lines[0] == ex.TRIGGERS[arch] and len(lines) == len(probes) + 1


def predictions_hold(arch: str) -> dict[str, tuple[str, int, int]]:
    """Checks every probe of ``arch`` against the kernel's answer; returns the answers."""
    path = vmlinux_path(arch=arch)
    if path is None:
        pytest.skip(f"Debian 6.1.0-56 {arch} vmlinux not fetched")
    ex = experiment()
    cx = Context(patchscope.open(path))
    seen = observed(arch)
    for name, probes in ex.SETS[arch].items():
        for p in probes:
            assert (DATA / "sets" / arch / f"{name}.probes").read_text().count(p.line(cx)) == 1, p
            assert seen[p.event][0] in ex.AGREES[ex.predict(cx, p)], (p, seen[p.event])
    return seen


def test_predictions_match_the_armed_amd64_kernel() -> None:
    seen = predictions_hold("amd64")
    # the handler's own reads: every one of the trigger's hits is a miss there, nothing else
    assert seen["m_struser"] == ("missed", 0, 43)
    assert {e for e, (v, _, _) in seen.items() if v == "missed"} == {"m_copy", "m_copy_insn", "m_struser", "m_ret_copy"}
    # an inlined copy of blacklisted get_kprobe fires when a later probe is registered
    assert seen["bc_register"][:2] == ("fine", 1)
    # the kernel refuses the copy inside the blacklisted handler, and one in notrace code
    assert seen["pr_protected"][0] == seen["bc_flush_task"][0] == "refused"


def test_predictions_match_the_armed_arm64_kernel() -> None:
    seen = predictions_hold("arm64")
    assert seen["m_struser"][0] == "missed" and seen["pr_protected"][0] == "refused"
