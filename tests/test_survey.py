"""``patchscope survey``: builds as one Parquet dataset, on a local cluster and on a Dask
cluster of a scheduler and two workers started as separate processes — the same dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from test_cli import run
from test_tree import FOO, KERNEL, SITES

from conftest import BIN

TABLES = ("binaries", "functions", "instances", "inline_sites", "findings")


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two builds: a kernel tree with a truncated module in it, and a second tree."""
    root = tmp_path_factory.mktemp("builds")
    for side in ("old", "new"):
        (root / side / "kernel").mkdir(parents=True)
        shutil.copy(KERNEL, root / side / "vmlinux")
        shutil.copy(BIN / "diff/x86_64-rel" / side / "module.o", root / side / "kernel/foo.ko")
    shutil.copy(SITES, root / "old/kernel/bar-baz.ko")
    (root / "old/kernel/broken.ko").write_bytes(FOO.read_bytes()[:1000])
    return [f"old={root / 'old'}", f"new={root / 'new'}"]


def rows(dataset: Path, table: str) -> list[tuple[object, ...]]:
    query = f"select * from read_parquet('{dataset}/{table}/**/*.parquet', hive_partitioning=true) order by all"
    return duckdb.connect().sql(query).fetchall()


@pytest.fixture(scope="module")
def local(builds: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "dataset"
    r = run("survey", *builds, "-o", out)
    assert r.returncode == 2, r.stderr  # the broken module
    assert r.stderr.count("\n") == 1 and "broken.ko" in r.stderr
    return out


def test_dataset_is_one_table_per_kind_partitioned(local: Path, builds: list[str]) -> None:
    con = duckdb.connect()
    parts = con.sql(
        f"""select build, arch, "binary", count(*) from read_parquet('{local}/functions/**/*.parquet',
            hive_partitioning=true) group by all order by all"""
    ).fetchall()
    assert [p[:3] for p in parts] == [
        ("new", "x86_64", "foo"),
        ("new", "x86_64", "vmlinux"),
        ("old", "x86_64", "bar_baz"),
        ("old", "x86_64", "foo"),
        ("old", "x86_64", "vmlinux"),
    ]
    # each partition holds what scan says of that binary alone
    foo = builds[0].split("=", 1)[1] + "/kernel/foo.ko"
    alone = json.loads(run("scan", "--format", "json", "--summary", foo).stdout)["summary"]
    assert ("old", "x86_64", "foo", alone["functions"]) in parts
    bands = con.sql(
        f"""select band, count(*) from read_parquet('{local}/functions/**/*.parquet', hive_partitioning=true)
            where build = 'old' and "binary" = 'foo' group by all"""
    ).fetchall()
    assert dict(bands) == {k: v for k, v in alone["functions_by_band"].items() if v}
    failed = con.sql(f"""select build, "binary" from read_parquet('{local}/failed.parquet')""").fetchall()
    assert failed == [("old", "broken")]


def test_which_functions_changed_inlining_across_builds(local: Path) -> None:
    """The design note's question, asked of the dataset in one query."""
    changed = (
        duckdb.connect()
        .sql(
            f"""select name from read_parquet('{local}/functions/**/*.parquet', hive_partitioning=true)
            where "binary" = 'foo' group by name having count(distinct status) > 1 order by name"""
        )
        .fetchall()
    )
    pair = json.loads(
        run(
            "diff", "--format", "json", BIN / "diff/x86_64-rel/old/module.o", BIN / "diff/x86_64-rel/new/module.o"
        ).stdout
    )
    inlining = sorted(f["name"] for f in pair["functions"] if "inlining" in f["changes"] and f["old"] and f["new"])
    assert [n for (n,) in changed] == inlining and inlining


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and two workers, each its own process, on localhost."""
    dask = Path(sys.executable).with_name("dask")
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", info],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        for _ in range(300):
            if info.exists() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from dask.distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_distributed_dataset_equals_the_local_one(cluster: str, builds: list[str], local: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    r = run("survey", *builds, "-o", out, "--scheduler", cluster)
    assert r.returncode == 2 and "broken.ko" in r.stderr
    for table in TABLES:
        assert rows(out, table) == rows(local, table), table
    assert (
        duckdb.connect().sql(f"select * from read_parquet('{out}/failed.parquet')").fetchall()
        == duckdb.connect().sql(f"select * from read_parquet('{local}/failed.parquet')").fetchall()
    )


def test_scheduler_unreachable(builds: list[str], tmp_path: Path) -> None:
    r = run("survey", *builds, "-o", tmp_path / "d", "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


def test_bad_builds(tmp_path: Path) -> None:
    r = run("survey", f"a={KERNEL}", f"a={FOO}", "-o", tmp_path / "d")
    assert r.returncode == 2 and r.stderr.strip() == "patchscope: error: build a given twice; name them NAME=PATH"
    r = run("survey", str(tmp_path / "nope"), "-o", tmp_path / "d")
    assert r.returncode == 2 and "no such file or folder" in r.stderr


def test_stats_of_the_dataset(local: Path, builds: list[str], tmp_path: Path) -> None:
    """``stats DATASET``: experiment 1 build by build — the counts ``stats TREE`` gives of each
    tree — and the functions whose inlining changed, those ``diff`` finds between the pair."""
    r = run("stats", "--format", "json", local, "--plots", tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(b["build"], b["binaries"]) for b in doc["builds"]] == [("new", 2), ("old", 3)]
    assert doc["failed"] == 1
    for build, spec in zip(("old", "new"), builds):
        tree = json.loads(run("stats", "--format", "json", spec.split("=", 1)[1]).stdout)["binaries"][0]
        (rec,) = [b for b in doc["builds"] if b["build"] == build]
        assert rec["functions"] == tree["calls"]["functions"]
        assert rec["inline_sites"] == tree["calls"]["call_sites"]["inline"]
        assert rec["functions_by_band"] == tree["bands"]["functions_by_band"]
    pair = json.loads(
        run(
            "diff", "--format", "json", BIN / "diff/x86_64-rel/old/module.o", BIN / "diff/x86_64-rel/new/module.o"
        ).stdout
    )
    inlining = sorted(f["name"] for f in pair["functions"] if "inlining" in f["changes"] and f["old"] and f["new"])
    changed = doc["inlining_changed"]
    assert changed["functions"] == len(inlining) and [e["name"] for e in changed["examples"]] == inlining
    assert all(e["binary"] == "foo" and set(e["statuses"]) == {"old", "new"} for e in changed["examples"])
    assert (tmp_path / "survey-calls.png").read_bytes()[:4] == b"\x89PNG"
    assert "functions whose inlining changed between builds" in run("stats", local).stdout
    r = run("stats", local, KERNEL)
    assert r.returncode == 2 and "stats reads one survey dataset, alone" in r.stderr
