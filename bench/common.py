"""What the benchmarks share: servers as subprocesses, peak memory, reports."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MIB = 1024 * 1024
GIB = 1024 * MIB


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MIB, "G": 1024 * MIB}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)


def size_label(size: int) -> str:
    """``size`` in the largest binary unit dividing it: 64 MiB, 8 GiB."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


def work_dir() -> Path:
    """A new scratch directory under ``$BENCH_DIR``, else the system's temp."""
    return Path(
        tempfile.mkdtemp(prefix="uploadd-bench-", dir=os.environ.get("BENCH_DIR"))
    )


def require_room(path: Path, needed: int, what: str) -> None:
    """Exit with a message unless ``path``'s file system has ``needed`` bytes
    free, rather than fill the disk other measurements share."""
    free = shutil.disk_usage(path).free
    if free < needed:
        raise SystemExit(
            f"{path} has {free / GIB:.1f} GiB free; {what} needs "
            f"{needed / GIB:.1f} GiB there: free some or set BENCH_DIR to a "
            "directory on a larger disk"
        )


def command_line() -> str:
    """This run's command as a RESULTS.md section cites it: the script and
    its arguments as given."""
    script = Path(sys.argv[0]).resolve()
    name = (
        script.relative_to(HERE.parent)
        if script.is_relative_to(HERE.parent)
        else script
    )
    return shlex.join([".venv/bin/python", str(name), *sys.argv[1:]])


def peak_kib(pid: int) -> int:
    """VmHWM of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """Every process: its parent and its CPU-seconds with its reaped
    children's (utime, stime, cutime, cstime)."""
    found = {}
    hertz = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), sum(map(int, fields[11:15])) / hertz)
    return found


def costed(pid: int, run: Callable[[], float], size: int) -> tuple[float, float]:
    """``run()``'s seconds, and the CPU-seconds per GiB of ``size`` that
    server ``pid`` spent meanwhile (read once it had a moment to finish
    recording what it answered)."""
    before = cpu_seconds(pid)
    seconds = run()
    time.sleep(0.3)
    return seconds, (cpu_seconds(pid) - before) * GIB / size


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and every descendant, those gone included: each
    process's own time plus its reaped children's (cutime, cstime), so a
    server forking short-lived workers (PostgreSQL's backends, RabbitMQ's
    script around beam) is counted whole; compare two readings."""
    processes = _processes()
    wanted, found = {pid}, True
    while found:
        found = False
        for child, (parent, _) in processes.items():
            if parent in wanted and child not in wanted:
                wanted.add(child)
                found = True
    return sum(processes[p][1] for p in wanted if p in processes)


def all_cpu_seconds() -> float:
    """CPU of every process on the machine, kernel threads included, counted
    as :func:`tree_cpu_seconds` does; compare two readings."""
    return sum(seconds for _, seconds in _processes().values())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while not path.exists() or not path.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {process.args!r}")
        time.sleep(0.05)
    text = path.read_text().strip()
    # A bare port, or (noded) a JSON map of ports the caller reads itself.
    return int(text) if text.isdigit() else 0


@contextmanager
def server(
    command: list[str], port_file: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """Run a server that writes its port to ``port_file``; (port, pid)."""
    process = subprocess.Popen(
        command,
        env=env or dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield wait_for(port_file, process), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uploadd(
    work: Path, settings: Mapping[str, str] | None = None, add_user: bool = True
) -> tuple[list[str], Path, dict[str, str], Callable[[], str]]:
    """The twistd command for an uploadd in ``work``, its port file, its
    environment, and a function giving a bearer token for user 'bench'.

    ``settings`` ({"database-url": ...}) become options of the server and
    UPLOADD_* variables of uploadctl; with a database shared with an
    uploadd made before, ``add_user=False`` (user 'bench' is there)."""
    data = work / "uploadd"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADD_")}
    ctl_env = {**env, "UPLOADD_DATA_DIR": str(data)}
    for name, value in (settings or {}).items():
        ctl_env["UPLOADD_" + name.upper().replace("-", "_")] = value
    if add_user:
        subprocess.run(
            [
                str(BIN / "uploadctl"),
                "--create",
                "user",
                "add",
                "bench",
                "--scope",
                "write",
            ],
            input=b"bench-password\n",
            env=ctl_env,
            check=True,
            capture_output=True,
        )

    def token() -> str:
        done = subprocess.run(
            [str(BIN / "uploadctl"), "token", "bench", "--ttl", "12h"],
            env=ctl_env,
            check=True,
            capture_output=True,
        )
        return done.stdout.decode().strip()

    command = [
        str(BIN / "twistd"),
        "--nodaemon",
        "--pidfile=",
        f"--logfile={work / 'uploadd.log'}",
        "uploadd",
        "--port=0",
        f"--data-dir={data}",
        *(f"--{name}={value}" for name, value in (settings or {}).items()),
    ]
    return command, data / "uploadd.port", env, token


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.removeprefix("--"), value


def add_uploadd_options(parser: argparse.ArgumentParser) -> None:
    """``--fsync`` and ``--setting`` for a benchmark starting uploadd."""
    parser.add_argument(
        "--fsync",
        choices=("true", "false"),
        default="true",
        help="uploadd's [storage] fsync (default true: durable before 201)",
    )
    parser.add_argument(
        "--setting",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pass --NAME=VALUE to uploadd, such as ingest-high-water=4M "
        "(repeatable; wins over the benchmark's own settings)",
    )


def uploadd_settings(
    args: argparse.Namespace, own: Mapping[str, str]
) -> dict[str, str]:
    """The settings for uploadd: the benchmark's ``own``, then ``--fsync``,
    then each ``--setting`` in order."""
    return {**own, "storage-fsync": args.fsync, **dict(args.setting)}


@contextmanager
def running_uploadd(
    work: Path, settings: Mapping[str, str]
) -> Iterator[tuple[int, int, str]]:
    """A fresh uploadd in ``work``: its port, its pid, and a bearer token of
    user 'bench'."""
    command, port_file, env, token_of = uploadd(work, settings)
    with server(command, port_file, env) as (port, pid):
        yield port, pid, token_of()


def in_rounds(
    runs: dict[str, Callable[[], float]],
    rounds: int,
    size: int,
    times: dict[str, list[float]],
    after: Callable[[], None],
) -> None:
    """Each run's seconds once per round, in turn (``after`` each), into
    ``times``; every round's MiB/s printed as it ends."""
    for number in range(rounds):
        for name, run in runs.items():
            times.setdefault(name, []).append(run())
            after()
        rates = ", ".join(f"{n} {size / t[-1] / MIB:.0f}" for n, t in times.items())
        print(f"round {number + 1} (MiB/s): {rates}", flush=True)


def median_rates(times: dict[str, list[float]], size: int) -> dict[str, float]:
    """MiB/s of each run's median time."""
    return {name: size / statistics.median(t) / MIB for name, t in times.items()}


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section starting with ``heading`` in RESULTS.md, keeping others."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    parts = text.split("\n## ")
    kept = [parts[0].rstrip() + "\n"] + [
        "## " + p.rstrip() + "\n"
        for p in parts[1:]
        if not ("## " + p).startswith(heading)
    ]
    path.write_text("\n".join([*kept, section]))


class Chunks(Protocol):
    """Where a client's body comes from, a chunk at a time."""

    def chunk(self, offset: int, size: int) -> bytes: ...


class Body:
    """Incompressible bytes generated on demand: block ``i`` of any size."""

    def __init__(self) -> None:
        self._block = bytearray(os.urandom(MIB))

    def chunk(self, offset: int, size: int) -> bytes:
        pieces = []
        for at in range(offset, offset + size, MIB):
            self._block[:8] = at.to_bytes(8, "little")
            pieces.append(bytes(self._block[: min(MIB, offset + size - at)]))
        return b"".join(pieces)
