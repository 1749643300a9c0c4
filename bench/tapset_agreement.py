"""Tapset aliases expanded by patchscope (probes/tapsets.py) beside ``stap -p2`` on a vmlinux.

    python bench/tapset_agreement.py VMLINUX [ALIAS …]

For each alias (default: those the corpus's SystemTap scripts use), ``stap -p2 -vv`` prints
the probes it derives (``kprobe.function("__x64_sys_open") /* <- … */``); the functions they
name are compared with the functions of the landings ``check`` gives the alias. Needs
SystemTap and a stub build dir (bench/stap_stub.sh -k VMLINUX); stap reads the vmlinux's
DWARF for each ``kernel.function``, about 5 s an alias here. The stub has no kernel headers,
so stap resolves no ``kernel.trace`` there and takes the alias's next alternative (``signal.send``:
``send_sigqueue`` instead of the ``signal_generate`` tracepoint): such a difference is the stub's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

#: A probe stap derived: its point, up to the comment that says where it came from.
_DERIVED = re.compile(r'^(?:kernel|kprobe|module\("[^"]*"\))\.(?:function|statement)\("([^"@]+)[^"]*"\)[^/]*/\*', re.M)


def corpus_aliases() -> list[str]:
    from corpus import files, script_args

    from patchscope.probes import scripts
    from patchscope.probes import syntax as ps

    out: dict[str, None] = {}
    for f in files():
        if f.suffix != ".stp":
            continue
        build = scripts.Build("6.1.0-56-amd64", "x86_64", None, script_args(f))
        for p in scripts.load_points(str(f), build):
            if isinstance(p, ps.ProbePoint) and p.mode == ps.ALIAS:
                out.setdefault(p.text.split()[0].rstrip("?!"), None)
    return list(out)


def stap_functions(stub: str, alias: str) -> set[str] | str:
    r = subprocess.run(
        ["stap", "-p2", "-vv", "-r", stub, "-e", f"probe {alias} {{ print(1) }}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode:
        errors = [line for line in r.stderr.splitlines() if "error" in line]
        return errors[-1] if errors else f"stap exits {r.returncode}"
    return set(_DERIVED.findall(r.stdout + r.stderr))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmlinux")
    p.add_argument("aliases", nargs="*")
    args = p.parse_args()

    import patchscope
    from patchscope.index.context import Context
    from patchscope.probes import scripts
    from patchscope.probes.resolve import resolve

    stub = subprocess.run(
        ["bash", str(ROOT / "bench/stap_stub.sh"), "-k", args.vmlinux], capture_output=True, text=True, check=True
    ).stdout.strip()
    b = patchscope.open(args.vmlinux)
    build = scripts.build_of(b.info)
    aliases = args.aliases or corpus_aliases()
    cx = Context(b)
    same = differ = both_refuse = 0
    for alias in aliases:
        res = resolve(cx, scripts.parse_line(f"stap -e 'probe {alias} {{ }}'", build)[0])
        theirs = stap_functions(stub, alias)
        # a landing is named by its source function (kernel.function) or its symbol (kprobe)
        names = [
            {cx.fn_name[lnd.fid] if lnd.fid >= 0 else "", cx.instance_symbol(lnd.instance) if lnd.instance >= 0 else ""}
            for lnd in res.landings
        ]
        names = [{n.split(".")[0] for n in ns if n} for ns in names]
        ours = {n for ns in names for n in ns}
        if isinstance(theirs, str):
            agree = bool(res.errors) and not res.landings
            both_refuse += agree
            differ += not agree
            print(f"{'=' if agree else '≠'} {alias}: stap refuses ({theirs[:100]}); ours {res.errors[:1]}")
            continue
        stems = {n.split(".")[0] for n in theirs}
        if all(ns & stems for ns in names) and stems <= ours:
            same += 1
            print(f"= {alias}: {len(theirs)} functions")
        else:
            differ += 1
            print(f"≠ {alias}: stap only {sorted(theirs - ours)[:5]}, ours only {sorted(ours - theirs)[:5]}")
    print(f"{same} aliases place the same functions as stap -p2, {both_refuse} refused by both, {differ} differ")


if __name__ == "__main__":
    main()
