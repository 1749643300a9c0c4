"""The proof of the write verdicts: perform each write under gdb and see whether the program's
output changes.

Every statement line of a fixture program (``fixtures/src/extra/writes.c``, written so that
every value flows into the number it prints) is resolved as ``process(BIN).statement("*@FILE:N")``
would be, and each integer variable in scope at each address gets patchscope's verdict for a
write there (``rules/writes.py``). Then gdb, in batch mode, does it: a temporary breakpoint at
the address, ``set var NAME = NAME + 977``, continue — one run of the program per (address,
variable), all in one gdb session (its Python API). What it observes:

- ``not-writable``: gdb refuses the assignment (no lvalue, optimized out, an entry value);
- ``takes``: the program printed something else than without the write;
- ``no-effect``: it printed the same;
- ``not-reached``: the breakpoint was never hit (this input does not run the line): not counted;
- ``no-symbol``: gdb does not see the variable there (it stops in the caller's frame at the
  start of an inlined copy): not counted.

An x86_64 program runs natively under gdb; an aarch64, riscv64 or ppc64le one under qemu-user
(``qemu-aarch64 -g PORT``, its libraries from the cross sysroot) with gdb-multiarch attached to
it, a new qemu for each run. ``python tests/write_proof.py [BINARY]`` prints the agreement; tests/test_writes.py
asserts it (docs/write-proof.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures/bin/x86_64-writes/corpus"
#: Programs of other architectures run under qemu-user: (ELF e_machine, qemu, its -L sysroot).
QEMU = {
    0xB7: ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
    0xF3: ("qemu-riscv64", "/usr/riscv64-linux-gnu"),
    0x15: ("qemu-ppc64le", "/usr/powerpc64le-linux-gnu"),
}
SOURCE = "src/extra/writes.c"
#: The types a write of ``NAME + 977`` is meaningful for.
INTEGERS = {"int", "long int", "unsigned int", "long unsigned int", "long long int", "short int", "char"}
#: What gdb saw that says nothing of the write: the line not run, the variable not visible, gdb hung.
UNCOUNTED = ("not-reached", "no-symbol", "hung")
#: What each verdict predicts gdb sees.
PREDICTS = {"takes": "takes", "spills-over": "takes", "no-effect": "no-effect", "not-writable": "not-writable"}

_GDB_SCRIPT = r"""
import gdb, json, subprocess, time
cases = json.load(open(CASES))
gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("handle SIGALRM SIGSEGV SIGFPE SIGBUS nostop noprint pass")
qemu = None
def stop():
    try:
        gdb.execute("kill", to_string=True)
    except gdb.error:
        pass
    if qemu is not None:
        try:
            qemu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
def launch(i, out):
    global qemu
    if QEMU is None:
        gdb.execute("run > " + out, to_string=True)
        return
    port = PORT + (FIRST + i) % 2000
    qemu = subprocess.Popen([QEMU[0], "-L", QEMU[1], "-g", str(port), PROGRAM], stdout=open(out, "w"))
    for _ in range(200):
        try:
            gdb.execute("target remote :%d" % port, to_string=True)
            break
        except gdb.error:
            time.sleep(0.02)
    gdb.execute("continue", to_string=True)
if QEMU is not None:
    gdb.execute("set sysroot " + QEMU[1])
found = []
for i, c in enumerate(cases):
    gdb.execute("delete", to_string=True)
    gdb.execute("tbreak *" + c["address"], to_string=True)
    out = OUT + "/" + str(FIRST + i)
    try:
        launch(i, out)
    except gdb.error:
        pass
    th = gdb.selected_thread()
    if th is None or not th.is_valid() or gdb.selected_frame().pc() != int(c["address"], 16):
        found.append(["not-reached", ""])
        stop()
        continue
    try:
        gdb.execute("set var %s = %s + 977" % (c["name"], c["name"]), to_string=True)
        said = ""
    except gdb.error as e:
        said = str(e)
    try:
        gdb.execute("continue", to_string=True)
    except gdb.error:
        pass
    stop()
    found.append(["refused" if said else "written", said])
json.dump(found, open(RESULT, "w"))
"""


@dataclass
class Case:
    address: int
    function: str
    line: int
    name: str
    predicted: str
    why: str
    observed: str = ""
    gdb_said: str = ""

    @property
    def agrees(self) -> bool:
        return PREDICTS[self.predicted] == self.observed


def cases(binary: Path) -> list[Case]:
    """Every (statement address, integer variable in scope there) with patchscope's verdict."""
    import patchscope
    from patchscope.probes import syntax as ps
    from patchscope.probes.judge import Judge

    judge = Judge(patchscope.open(binary))
    out: dict[tuple[int, str], Case] = {}
    last = len((ROOT / "fixtures" / SOURCE).read_text().splitlines())
    for n in range(1, last + 1):
        v = judge(ps.parse(f'process("{binary}").statement("*@{SOURCE}:{n}")'))
        for lv in v.landings:
            for var in lv.variables:
                w = var.get("write")
                bare = " ".join(t for t in var["type"].split() if t not in ("volatile", "const"))
                if w is None or bare not in INTEGERS or w["verdict"] not in PREDICTS:
                    continue
                key = (lv.landing.address, var["name"])
                fn = judge.cx.fn_name[lv.landing.fid] if lv.landing.fid >= 0 else "?"
                out.setdefault(key, Case(lv.landing.address, fn, n, var["name"], w["verdict"], w["why"]))
    return sorted(out.values(), key=lambda c: (c.address, c.name))


def emulator(binary: Path) -> tuple[str, str] | None:
    """qemu-user and its sysroot for a program of another architecture; ``None``: native."""
    machine = int.from_bytes(binary.read_bytes()[18:20], "little")
    return QEMU.get(machine)


def tools(binary: Path) -> list[str]:
    """What running the writes on ``binary`` needs and is missing."""
    qemu = emulator(binary)
    need = ["gdb"] if qemu is None else ["gdb-multiarch", qemu[0]]
    missing = [t for t in need if not shutil.which(t)]
    if qemu is not None and not (Path(qemu[1]) / "lib").is_dir():
        missing.append(f"the cross libc in {qemu[1]}")
    return missing


def _session(t: Path, binary: Path, qemu: tuple[str, str] | None, first: int, cases: list[Case], timeout: int) -> Any:
    """One gdb session performing ``cases`` (numbered from ``first``): each one's [what, said]."""
    (t / "cases.json").write_text(json.dumps([{"address": hex(c.address), "name": c.name} for c in cases]))
    (t / "result.json").unlink(missing_ok=True)
    script = (
        f"CASES = {str(t / 'cases.json')!r}\nOUT = {str(t / 'out')!r}\nRESULT = {str(t / 'result.json')!r}\n"
        f"QEMU = {qemu!r}\nPROGRAM = {str(binary)!r}\nPORT = {20000 + os.getpid() % 20000}\nFIRST = {first}\n"
    )
    (t / "prove.py").write_text(script + _GDB_SCRIPT)
    gdb = "gdb" if qemu is None else "gdb-multiarch"
    try:
        done = subprocess.run(
            [gdb, "-nx", "-batch", "-ex", f"source {t / 'prove.py'}", str(binary)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return [["hung", ""] for _ in cases]
    if not (t / "result.json").exists():
        raise RuntimeError(f"gdb failed: {done.stderr.strip()[-2000:]}")
    return json.loads((t / "result.json").read_text())


def run_gdb(binary: Path, found: list[Case]) -> str:
    """Performs every write under gdb; fills ``observed``. Returns the program's own output."""
    qemu = emulator(binary)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        run = [str(binary)] if qemu is None else [qemu[0], "-L", qemu[1], str(binary)]
        baseline = subprocess.run(run, check=True, capture_output=True, text=True, timeout=60).stdout
        (t / "out").mkdir()
        if qemu is None:
            results = _session(t, binary, qemu, 0, found, 1200)
        else:
            # a session per write under qemu: gdb-multiarch now and then waits for ever on a
            # qemu that has exited; a run that hangs is one case lost, not the whole proof
            results = [r for i, c in enumerate(found) for r in _session(t, binary, qemu, i, [c], 60)]
        for i, (c, (what, said)) in enumerate(zip(found, results)):
            c.gdb_said = said
            if what in ("not-reached", "hung"):
                c.observed = what
            elif what == "refused":
                c.observed = "no-symbol" if re.match(r"No symbol", said) else "not-writable"
            else:
                printed = (t / "out" / str(i)).read_text()
                c.observed = "no-effect" if printed == baseline else "takes"
    return baseline


def agreement(found: list[Case]) -> dict[str, Any]:
    """Counted cases (reached, the variable visible to gdb), how many agree, and by verdict."""
    counted = [c for c in found if c.observed not in UNCOUNTED]
    agree = [c for c in counted if c.agrees]
    return {
        "cases": len(found),
        "counted": len(counted),
        "agree": len(agree),
        "ratio": len(agree) / len(counted) if counted else 1.0,
        "by_verdict": dict(Counter(f"{c.predicted} → {c.observed}" for c in counted)),
        # variables in a frame slot (fbreg), whose verdict comes from the slot's liveness
        "frame_slots": dict(Counter(f"{c.predicted} → {c.observed}" for c in counted if "fbreg" in c.why)),
        "skipped": dict(Counter(c.observed for c in found if c not in counted)),
    }


def main(argv: list[str]) -> int:
    binary = Path(argv[1]) if len(argv) > 1 else FIXTURE
    missing = tools(binary)
    if missing:
        print(f"not installed: {', '.join(missing)}", file=sys.stderr)
        return 1
    found = cases(binary)
    run_gdb(binary, found)
    print(json.dumps(agreement(found), indent=1))
    for c in found:
        if c.observed not in UNCOUNTED and not c.agrees:
            said = f"{c.observed} {c.gdb_said}".strip()
            print(f"{c.address:#x} {c.function}:{c.line} {c.name}: predicted {c.predicted} ({c.why}); gdb: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
