"""Scale-out benchmark: per-chunk latency of tus PATCHes into uploadd on
SQLite against PostgreSQL, then concurrent whole-file uploads through HAProxy
into one uploadd against two instances sharing PostgreSQL and RabbitMQ.

    .venv/bin/python bench/scaleout.py [--chunks 256] [--size 256M]
        [--uploads 8] [--rounds 3]

Part one: two uploadd side by side, one on its SQLite file, one on a private
PostgreSQL 15 over loopback TCP; the same keep-alive client creates a tus
upload of ``--chunks`` MiB on each in turn and PATCHes it full 1 MiB at a
time, timing every PATCH. PostgreSQL runs with fsync on (as uploadd's SQLite
commits with synchronous=FULL), so both pay for a durable commit.

Part two: ``--uploads`` clients at once, each a PUT of ``--size`` with a
Content-Length (bench/ingest.py's client), through HAProxy (round robin, no
request buffering) into one uploadd, or two with distinct --cluster-instance
names; every instance on PostgreSQL and a private RabbitMQ, the same
--auth-secret. Each run starts its instances and HAProxy afresh, so CPU and
peak memory are the run's own.

Rounds are interleaved; medians are reported. CPU-seconds come from
/proc/PID/stat. As root, PostgreSQL runs as the ``postgres`` user
(tests/postgres.py). Writes the scale-out section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    HERE,
    MIB,
    Body,
    all_cpu_seconds,
    cpu_seconds,
    in_rounds,
    machine,
    median_rates,
    parse_size,
    peak_kib,
    percentile,
    server,
    tree_cpu_seconds,
    uploadd,
    write_section,
)
from ingest import upload
from resumable import tus_upload

sys.path.insert(0, str(HERE.parent))

from tests.integration.broker import Broker, free_port
from tests.postgres import Cluster, start_cluster

HAPROXY = Path("/usr/sbin/haproxy")
GIB = 1024 * MIB
#: The configurations of part two: instance names behind HAProxy.
LAYOUTS = {"one instance": ("s",), "two instances": ("a", "b")}


@dataclass
class Run:
    """One run of part two: seconds, CPU-seconds by component, VmHWM (KiB)
    and files stored of each instance."""

    seconds: float
    cpu: dict[str, float]
    peaks: list[int]
    stored: list[int]


def clean(data: Path) -> None:
    """Drop stored files and resumable uploads of an uploadd between runs
    (their folders stay: a running uploadd expects them)."""
    for folder in ("files", "uploads"):
        for child in (data / folder).glob("*"):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def client_cpu() -> float:
    """CPU of this process (the client's threads), user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> dict[str, float]:
    """Seconds of all CPUs since boot, from /proc/stat: busy (user, nice,
    system, irq, softirq, steal), waiting for disk (iowait), idle."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    hertz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
    return {
        "busy": (user + nice + system + irq + softirq + steal) / hertz,
        "iowait": iowait / hertz,
        "idle": idle / hertz,
    }


def reactor_cpu(pid: int) -> float:
    """CPU of a process's main thread: twistd's reactor."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1]
    ticks = fields.split()[11:13]
    return sum(int(t) for t in ticks) / os.sysconf("SC_CLK_TCK")


@contextmanager
def haproxy(work: Path, name: str, backends: list[int]) -> Iterator[tuple[int, int]]:
    """HAProxy on a free loopback port, round robin over ``backends``;
    (port, pid). HTTP mode streams request bodies as they come unless told
    to buffer them (``option http-buffer-request``), which it is not."""
    port = free_port()
    config = work / f"haproxy-{name}.cfg"
    servers = "\n".join(
        f"    server u{n} 127.0.0.1:{backend}" for n, backend in enumerate(backends)
    )
    config.write_text(
        f"""global
    maxconn 1024

defaults
    mode http
    timeout connect 5s
    timeout client 10m
    timeout server 10m
    timeout http-request 10m

frontend uploads
    bind 127.0.0.1:{port}
    default_backend uploadd

backend uploadd
    balance roundrobin
{servers}
"""
    )
    with (work / f"haproxy-{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy did not start: see {config}") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- part one: per-chunk latency -------------------------------------------


def latency(
    work: Path, cluster: Cluster, chunks: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Per-PATCH seconds, run times and CPU of uploadd on SQLite and on
    PostgreSQL, one tus upload of ``chunks`` MiB each per round."""
    size = chunks * MIB
    body = Body()
    found: dict[str, dict[str, Any]] = {
        name: {"patches": [], "cpu": [], "db_cpu": [], "per_round": []}
        for name in ("SQLite", "PostgreSQL")
    }
    times: dict[str, list[float]] = {}
    (work / "sqlite").mkdir()
    (work / "pg").mkdir()
    sqlite = uploadd(work / "sqlite")
    pg = uploadd(work / "pg", {"database-url": cluster.create_database("latency")})
    with ExitStack() as stack:
        ends = {}
        for name, (command, port_file, env, token_of) in (
            ("SQLite", sqlite),
            ("PostgreSQL", pg),
        ):
            port, pid = stack.enter_context(server(command, port_file, env))
            ends[name] = (port, pid, token_of(), port_file.parent)

        def run(name: str) -> float:
            port, pid, token, data = ends[name]
            patches: list[float] = []
            cpu, db = cpu_seconds(pid), tree_cpu_seconds(cluster.pid or 0)
            elapsed = tus_upload(port, "/uploads/", size, MIB, body, token, patches)
            found[name]["cpu"].append(cpu_seconds(pid) - cpu)
            found[name]["db_cpu"].append(tree_cpu_seconds(cluster.pid or 0) - db)
            found[name]["patches"] += patches
            found[name]["per_round"].append(
                (percentile(patches, 0.5), percentile(patches, 0.99))
            )
            clean(data)
            return elapsed

        in_rounds(
            {name: lambda n=name: run(n) for name in found},  # type: ignore[misc]
            rounds,
            size,
            times,
            lambda: None,
        )
    rates = median_rates(times, size)
    for name, measured in found.items():
        measured["rate"] = rates[name]
        measured["rounds"] = [size / t / MIB for t in times[name]]
    return found


# -- part two: aggregate ingest through HAProxy ------------------------------


def ingest(
    work: Path,
    cluster: Cluster,
    broker: Broker,
    size: int,
    uploads: int,
    rounds: int,
) -> tuple[dict[str, list[float]], dict[str, list[Run]]]:
    """Seconds of each run of every layout, and what each run measured."""
    secret = secrets.token_hex(32)
    prepared: dict[str, list[tuple[list[str], Path, dict[str, str], str]]] = {}
    for layout, names in LAYOUTS.items():
        database = cluster.create_database(layout.split()[0])
        prepared[layout] = []
        for index, name in enumerate(names):
            (work / name).mkdir()
            command, port_file, env, token_of = uploadd(
                work / name,
                {
                    "database-url": database,
                    "amqp-url": broker.url,
                    "auth-secret": secret,
                    "cluster-instance": name,
                },
                add_user=index == 0,
            )
            prepared[layout].append((command, port_file, env, token_of()))
    broker_pid = broker.process.pid if broker.process else 0
    measured: dict[str, list[Run]] = {layout: [] for layout in LAYOUTS}
    counter = [0]

    def run(layout: str) -> float:
        counter[0] += 1
        with ExitStack() as stack:
            pids = []
            for command, port_file, env, _ in prepared[layout]:
                port_file.unlink(missing_ok=True)
                pids.append(stack.enter_context(server(command, port_file, env)))
            proxy_port, proxy_pid = stack.enter_context(
                haproxy(work, layout.split()[0], [port for port, _ in pids])
            )
            token = prepared[layout][0][3]
            time.sleep(1)  # let the instances settle (bus, relay leadership)
            readers: dict[str, Callable[[], float]] = {
                **{
                    f"uploadd {name}": lambda pid=pid: cpu_seconds(pid)  # type: ignore[misc]
                    for name, (_, pid) in zip(LAYOUTS[layout], pids, strict=True)
                },
                "uploadd": lambda: sum(cpu_seconds(pid) for _, pid in pids),
                "reactor threads": lambda: sum(reactor_cpu(pid) for _, pid in pids),
                "HAProxy": lambda: cpu_seconds(proxy_pid),
                "PostgreSQL": lambda: tree_cpu_seconds(cluster.pid or 0),
                "RabbitMQ": lambda: tree_cpu_seconds(broker_pid),
                "client": client_cpu,
                "all processes": all_cpu_seconds,
                **{
                    f"machine {name}": lambda name=name: machine_cpu()[name]  # type: ignore[misc]
                    for name in ("busy", "iowait", "idle")
                },
            }
            before = {name: read() for name, read in readers.items()}
            with ThreadPoolExecutor(uploads) as pool:
                started = time.monotonic()
                list(
                    pool.map(
                        lambda n: upload(
                            proxy_port,
                            size,
                            f"/files/scaleout-{counter[0]}-{n}.bin",
                            token,
                        ),
                        range(uploads),
                    )
                )
                elapsed = time.monotonic() - started
            cpu = {name: read() - before[name] for name, read in readers.items()}
            cpu["other processes"] = cpu["all processes"] - sum(
                cpu[name]
                for name in ("uploadd", "HAProxy", "PostgreSQL", "RabbitMQ", "client")
            )
            measured[layout].append(
                Run(
                    elapsed,
                    cpu,
                    [peak_kib(pid) for _, pid in pids],
                    [
                        sum(
                            p.is_file() for p in (port_file.parent / "files").rglob("*")
                        )
                        for _, port_file, _, _ in prepared[layout]
                    ],
                )
            )
        for _, port_file, _, _ in prepared[layout]:
            clean(port_file.parent)
        return elapsed

    times: dict[str, list[float]] = {}
    in_rounds(
        {layout: lambda n=layout: run(n) for layout in LAYOUTS},  # type: ignore[misc]
        rounds,
        size * uploads,
        times,
        lambda: None,
    )
    return times, measured


# -- report ------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--size", default="256M")
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    size = parse_size(args.size)
    if not HAPROXY.exists():
        sys.exit("haproxy missing: `make setup` installs it (scripts/system-packages)")
    parent = os.environ.get("BENCH_DIR")
    work = Path(tempfile.mkdtemp(prefix="uploadd-bench-", dir=parent))
    cluster = start_cluster(fsync=True, parent=parent)
    broker = Broker(work / "rabbitmq", free_port(), free_port())
    try:
        broker.start()
        (work / "latency").mkdir()
        (work / "ingest").mkdir()
        chunked = latency(work / "latency", cluster, args.chunks, args.rounds)
        times, runs = ingest(
            work / "ingest", cluster, broker, size, args.uploads, args.rounds
        )
    finally:
        broker.stop()
        broker.stop_epmd()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    section = report(args, chunked, times, runs)
    write_section(Path(args.output), "## Scale-out", section)
    print(section)


def report(
    args: argparse.Namespace,
    chunked: dict[str, dict[str, Any]],
    times: dict[str, list[float]],
    runs: dict[str, list[Run]],
) -> str:
    size = parse_size(args.size)
    total: int = size * args.uploads
    chunk_gib = args.chunks * MIB / GIB
    where = {
        "SQLite": "its file in the data dir (WAL, synchronous=FULL)",
        "PostgreSQL": "private PostgreSQL 15 over loopback TCP (fsync on)",
    }
    latency_rows = [
        "| metadata store | p50 per PATCH | p99 per PATCH | MiB/s (median) "
        "| uploadd CPU-s/GiB | PostgreSQL CPU-s/GiB |",
        "|---|---|---|---|---|---|",
    ]
    for name, found in chunked.items():
        db = statistics.median(found["db_cpu"]) / chunk_gib
        # The SQLite uploadd does not use the (idle) PostgreSQL.
        db_cell = f"{db:.2f}" if name == "PostgreSQL" else ""
        latency_rows.append(
            f"| {name}: {where[name]} "
            f"| {1000 * percentile(found['patches'], 0.5):.1f} ms "
            f"| {1000 * percentile(found['patches'], 0.99):.1f} ms "
            f"| {found['rate']:.0f} "
            f"| {statistics.median(found['cpu']) / chunk_gib:.2f} "
            f"| {db_cell} |"
        )
    rate = median_rates(times, total)
    servers = ("HAProxy", "PostgreSQL", "RabbitMQ", "client")
    others = "other processes"
    ingest_rows = [
        "| behind HAProxy | MiB/s aggregate (median) | vs one instance "
        "| peak RSS per instance (VmHWM) |",
        "|---|---|---|---|",
    ]
    cpu_rows = [
        "| behind HAProxy | uploadd (per instance) | its reactor threads | "
        + " | ".join(servers)
        + f" | {others} | these processes, of all CPUs "
        "| machine busy / iowait / idle |",
        "|---|" + "---|" * (len(servers) + 5),
    ]
    cpus = os.cpu_count() or 1
    for layout, measured in runs.items():
        names = LAYOUTS[layout]
        peaks = ", ".join(
            f"{name} {max(m.peaks[i] for m in measured) / 1024:.1f} MiB"
            for i, name in enumerate(names)
        )
        ingest_rows.append(
            f"| {layout} | {rate[layout]:.0f} "
            f"| {rate[layout] / rate['one instance']:.2f}x | {peaks} |"
        )

        def per_gib(name: str, runs_of: list[Run] = measured) -> float:
            return statistics.median(m.cpu[name] for m in runs_of) / (total / GIB)

        def share(names: tuple[str, ...], runs_of: list[Run] = measured) -> str:
            """Median share of all CPUs over the run's wall time."""
            found = statistics.median(
                sum(m.cpu[n] for n in names) / (m.seconds * cpus) for m in runs_of
            )
            return f"{100 * found:.0f}%"

        each = ", ".join(f"{name} {per_gib(f'uploadd {name}'):.2f}" for name in names)
        cpu_rows.append(
            f"| {layout} | {per_gib('uploadd'):.2f}"
            + (f" ({each})" if len(names) > 1 else "")
            + f" | {per_gib('reactor threads'):.2f} | "
            + " | ".join(f"{per_gib(c):.2f}" for c in servers)
            + f" | {per_gib(others):.2f} | {share(('uploadd', *servers))} | "
            + " / ".join(share((f"machine {n}",)) for n in ("busy", "iowait", "idle"))
            + " |"
        )
    stored = "; ".join(
        f"{layout}: " + ", ".join(str(n) for n in measured[-1].stored)
        for layout, measured in runs.items()
    )
    return "\n".join(
        [
            "## Scale-out: SQLite vs PostgreSQL, one vs two instances",
            "",
            f"Command: `.venv/bin/python bench/scaleout.py --chunks {args.chunks} "
            f"--size {args.size} --uploads {args.uploads} --rounds {args.rounds}`",
            "",
            f"Machine: {machine()}; clients, servers, HAProxy, PostgreSQL and "
            "RabbitMQ on one host over loopback; every uploadd hashes (sha256 + "
            "md5) and fsyncs.",
            "",
            f"Per-chunk latency: one tus upload of {args.chunks} x 1 MiB PATCHes "
            "per round on each store, one keep-alive connection, straight to "
            "uploadd (in-process bus); p50 and p99 over all "
            f"{args.rounds * args.chunks} PATCHes of each store.",
            "",
            *latency_rows,
            "",
            "Rounds (p50 / p99 ms): "
            + "; ".join(
                f"{name} "
                + ", ".join(
                    f"{1000 * p50:.1f} / {1000 * p99:.1f}"
                    for p50, p99 in found["per_round"]
                )
                for name, found in chunked.items()
            ),
            "",
            f"Aggregate ingest: {args.uploads} concurrent `PUT /files/{{name}}` of "
            f"{args.size} each (Content-Length) through HAProxy {haproxy_version()} "
            "(round robin, bodies streamed); every instance on one PostgreSQL "
            "database per layout and a private RabbitMQ (`--amqp-url`), the same "
            "`--auth-secret`, its own `--cluster-instance`.",
            "",
            *ingest_rows,
            "",
            "CPU-seconds per GiB ingested, median of rounds (uploadd summed over "
            "its instances, their main threads, which run the reactor, a part of "
            "that; client: the benchmark's sending threads; other processes: "
            "everything else on the machine, kernel threads such as writeback "
            "included; well above zero means other work shared the CPUs and the "
            "rates are not comparable); then the share of "
            f"{cpus} CPUs x the run's wall time the benchmark's processes used, "
            "and what the whole machine did meanwhile (/proc/stat; busy also "
            "counts interrupt handling):",
            "",
            *cpu_rows,
            "",
            "Rounds (MiB/s): "
            + "; ".join(
                f"{layout} " + ", ".join(f"{total / t / MIB:.0f}" for t in ts)
                for layout, ts in times.items()
            )
            + f". Files stored per instance in the last round: {stored}.",
            "",
        ]
    )


def haproxy_version() -> str:
    done = subprocess.run(
        [str(HAPROXY), "-v"], capture_output=True, text=True, check=False
    )
    words = done.stdout.split()
    return words[2].split("-")[0] if len(words) > 2 else ""


if __name__ == "__main__":
    main()
