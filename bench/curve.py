"""Cost curve: one upload of each size into a fresh uploadd, to show that
time grows linearly with the size and memory does not grow.

Each size is one ``PUT /files/<name>`` from the ingest benchmark's client (a
blocking socket, a generated body, a Content-Length) into an uploadd started
for it alone, so its VmHWM (a high-water mark) belongs to that size. Reported
per size: seconds from the first byte to the answer, MiB/s, seconds per GiB,
the server's CPU-seconds per GiB (all its threads, from /proc) and VmHWM.
The file is deleted after each size; the run refuses to start unless the
disk holds the largest size plus 1 GiB.

    .venv/bin/python bench/curve.py [--sizes 64M,1G,8G] [--fsync false]
        [--setting ingest-high-water=4M ...]

Writes bench/RESULTS.md (the cost curve section).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import attrs
from common import (
    GIB,
    HERE,
    MIB,
    add_uploadd_options,
    command_line,
    costed,
    machine,
    parse_size,
    peak_kib,
    require_room,
    running_uploadd,
    size_label,
    uploadd_settings,
    work_dir,
    write_section,
)
from ingest import upload

#: uploadd's default [http] max_upload_size; larger sizes raise it.
MAX_UPLOAD = 10 * GIB


@attrs.frozen
class Point:
    size: int
    seconds: float
    cpu: float
    idle_kib: int
    peak_kib: int


def measure(work: Path, settings: dict[str, str], size: int) -> Point:
    place = work / str(size)
    place.mkdir()
    try:
        with running_uploadd(place, settings) as (port, pid, token):
            idle = peak_kib(pid)
            seconds, cpu = costed(
                pid, lambda: upload(port, size, "/files/curve.bin", token), size
            )
            peak = peak_kib(pid)
            shutil.rmtree(place / "uploadd" / "files", ignore_errors=True)
    finally:
        shutil.rmtree(place, ignore_errors=True)
    return Point(size, seconds, cpu, idle, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64M,1G,8G")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    add_uploadd_options(parser)
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    own = {}
    if max(sizes) > MAX_UPLOAD:
        own["http-max-upload-size"] = str(max(sizes))
    settings = uploadd_settings(args, own)
    work = work_dir()
    points = []
    try:
        require_room(work, max(sizes) + GIB, "the largest upload plus 1 GiB")
        for size in sizes:
            points.append(measure(work, settings, size))
            point = points[-1]
            print(
                f"{size_label(size)}: {point.seconds:.1f} s, "
                f"{size / point.seconds / MIB:.0f} MiB/s, {point.cpu:.2f} "
                f"CPU-s/GiB, VmHWM {point.peak_kib / 1024:.1f} MiB",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = report(points, args, settings, own)
    print(section)
    write_section(Path(args.output), "## Cost curve", section)


def report(
    points: list[Point],
    args: argparse.Namespace,
    settings: dict[str, str],
    own: dict[str, str],
) -> str:
    given = dict(args.setting)
    rows = [
        "| size | seconds | MiB/s | seconds per GiB | server CPU-s/GiB "
        "| server VmHWM (idle) |",
        "|---|---|---|---|---|---|",
    ]
    for point in points:
        rows.append(
            f"| {size_label(point.size)} | {point.seconds:.2f} "
            f"| {point.size / point.seconds / MIB:.0f} "
            f"| {point.seconds * GIB / point.size:.2f} | {point.cpu:.2f} "
            f"| {point.peak_kib / 1024:.1f} MiB ({point.idle_kib / 1024:.1f}) |"
        )
    extra = {**{k: v for k, v in own.items() if k not in given}, **given}
    return "\n".join(
        [
            "## Cost curve: one upload of " + ", ".join(args.sizes.split(",")),
            "",
            f"Command: `{command_line()}`",
            "",
            f"Machine: {machine()}; client and server on one host over loopback.",
            "",
            "One `PUT /files/<name>` per size from the ingest client, into a "
            "fresh uploadd per size with `[storage] fsync = "
            f"{settings['storage-fsync']}`"
            + (
                ", " + ", ".join(f"`--{k}={v}`" for k, v in extra.items())
                if extra
                else ""
            )
            + "; the file deleted after each size. Flat memory shows as the "
            "same VmHWM at every size, linear time as the same seconds per GiB.",
            "",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    main()
