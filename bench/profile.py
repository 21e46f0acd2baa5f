"""Where uploadd's CPU goes while it ingests one large upload: a perf profile.

Starts an uploadd (page-cache mode unless ``--fsync``), sends one upload of
``--size`` with the ingest benchmark's client, samples the server process
with ``perf record`` meanwhile (every thread, kernel included), and writes
the top entries by shared object and by symbol to bench/RESULTS.md, with the
CPU-seconds per GiB of that upload.

    .venv/bin/python bench/profile.py [--size 1G] [--fsync]

Needs ``perf`` (Debian package linux-perf) and the right to profile (root,
or kernel.perf_event_paranoid <= 1).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import time
from pathlib import Path

from common import (
    HERE,
    MIB,
    costed,
    machine,
    parse_size,
    running_uploadd,
    work_dir,
    write_section,
)
from ingest import upload

TOP = 12


def top(report: str) -> list[tuple[float, str]]:
    """The first entries of a ``perf report``: (per cent, name), a shared
    object's addresses without symbols (OpenSSL's, stripped) summed as one."""
    found: dict[str, float] = {}
    for line in report.splitlines():
        parts = line.split()
        if not parts or not parts[0].endswith("%"):
            continue
        name = " ".join(parts[1:])
        if len(parts) >= 4 and parts[-1].startswith("0x"):
            name = f"{parts[1]} (no symbols)"
        found[name] = found.get(name, 0.0) + float(parts[0].rstrip("%"))
    ranked = sorted(found.items(), key=lambda item: -item[1])
    return [(share, name) for name, share in ranked[:TOP]]


def perf_report(data: Path, sort: str) -> str:
    done = subprocess.run(
        [
            "perf",
            "report",
            "-i",
            str(data),
            "--no-children",
            "--sort",
            sort,
            "--stdio",
            "-g",
            "none",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    size = parse_size(args.size)
    work = work_dir()
    data = work / "perf.data"
    settings = {"storage-fsync": "true" if args.fsync else "false"}
    try:
        with running_uploadd(work, settings) as (port, pid, token):
            upload(port, 16 * MIB, "/files/warm.bin", token)
            perf = subprocess.Popen(
                ["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", str(data)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
            seconds, spent = costed(
                pid, lambda: upload(port, size, "/files/profiled.bin", token), size
            )
            perf.send_signal(signal.SIGINT)
            perf.wait()
        by_object = top(perf_report(data, "dso"))
        by_symbol = top(perf_report(data, "dso,sym"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mode = "durable (fsync)" if args.fsync else "page cache"
    lines = [
        "## Profile: where one upload's CPU goes",
        "",
        "Command: `.venv/bin/python bench/profile.py "
        f"--size {args.size}{' --fsync' if args.fsync else ''}`",
        "",
        f"Machine: {machine()}; uploadd `PUT /files/{{name}}` of {args.size}, "
        f"{mode}, default settings: {size / seconds / MIB:.0f} MiB/s, "
        f"{spent:.2f} CPU-seconds per GiB. `perf record -g` of the server "
        "process (all threads, kernel included); share of samples.",
        "",
        "| shared object | share |",
        "|---|---|",
        *(f"| {name} | {share:.1f}% |" for share, name in by_object),
        "",
        "| shared object and symbol | share |",
        "|---|---|",
        *(f"| `{name}` | {share:.1f}% |" for share, name in by_symbol),
        "",
    ]
    section = "\n".join(lines)
    write_section(Path(args.output), "## Profile", section)
    print(section)


if __name__ == "__main__":
    main()
