"""Resumable-upload benchmark: one file through tus and Content-Range chunks.

uploadd's tus endpoint against @tus/server with @tus/file-store (npm, node)
and tuspyserver on uvicorn (PyPI), with the same client and chunk sizes, plus
uploadd's Content-Range API and its single-request ingest as the reference.
The client is one keep-alive connection sending chunks one after another, as
tus clients do. Rounds are interleaved; medians are reported. Each row says
what its server does with the bytes besides writing them (what it hashes,
when it fsyncs), as read in the versions installed (``DOES`` below).

tusd, the Go reference server, is not a peer here because no registry this
project installs from ships it: Debian bookworm has no tusd package
(``apt-cache policy tusd`` lists nothing), PyPI has no ``tusd``, npm answers
404 for ``tusd`` and for ``tusd-static-linux`` (a package said to bundle its
binary), and building it from its Go module fails for want of the network,
not of a compiler: ``go install github.com/tus/tusd/cmd/tusd@v1.13.0`` with
Debian's golang-go 1.19 (tusd 1.13 asks for Go 1.16, v2 for 1.20 to 1.25)
cannot resolve the Go module proxy's host, nor, with ``GOPROXY=direct``, the
repository's. (Its file store, read in v2.10.0, hashes nothing and never
fsyncs: ``pkg/filestore`` WriteChunk appends each PATCH with ``io.Copy`` and
closes the file.)

    .venv/bin/python bench/resumable.py [--size 1G] [--rounds 2]

Needs the peers: `make bench-peers` (npm ci in bench/peers and a venv with
tuspyserver and uvicorn under bench/work/). Writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from common import (
    HERE,
    MIB,
    Body,
    Chunks,
    costed,
    in_rounds,
    machine,
    median_rates,
    parse_size,
    peak_kib,
    running_uploadd,
    server,
    work_dir,
    write_section,
)

PEERS_VENV = HERE / "work" / "peers-venv"

# What each server does with the bytes besides writing them, as read in its
# source (uploadd's in this tree, the peers' in the versions bench/peers and
# `make bench-peers` pin); the "does" column of the report.
DOES = {
    # uploadd/ingest/blob.py: BlobFile.take hashes every byte with sha256
    # (md5 only with [storage] digests or where the protocol needs it:
    # Content-Range, whose completion may name the file's md5); .close fsyncs
    # ([storage] fsync, on by default; off in the page-cache rows), then
    # uploadd/uploads/appends.py Append.land (spans.py for Content-Range)
    # saves the new offset to SQLite (PRAGMA synchronous=FULL) before the
    # answer: an acknowledged offset survives kill -9 in both modes, and a
    # power cut in the durable one.
    "uploadd single request": "sha256 of every byte; fsync at the end",
    "uploadd tus": "sha256 of every byte; fsync + offset commit per chunk",
    "uploadd tus, page cache": "sha256 of every byte; offset commit per chunk",
    "uploadd Content-Range": (
        "sha256 + md5 of every byte; fsync + offset commit per chunk"
    ),
    "uploadd Content-Range, page cache": (
        "sha256 + md5 of every byte; offset commit per chunk"
    ),
    # @tus/file-store 2.1.1 dist/index.js write() (lines 75-98): a pipeline
    # into fs.createWriteStream, no fsync; getUpload() takes the offset from
    # the file's size (line 124); @tus/utils 0.7.1 FileKvStore.set() writes
    # the JSON record with fs.writeFile at creation, no fsync. No hash.
    "@tus/server + @tus/file-store": "no hash; never fsyncs",
    # tuspyserver 4.4.3 request.py (no storage backend, as here): each body
    # piece is f.write + f.flush() (to the kernel, lines 276-277), never
    # fsynced; the offset is then saved with `file.info = ...` (line 286),
    # which info.py serialize() writes to a temporary file, fsyncs (line 68)
    # and renames. No hash.
    "tuspyserver on uvicorn": (
        "no hash; fsyncs only the offset file per chunk, never the data"
    ),
}


def tus_upload(
    port: int,
    path: str,
    size: int,
    chunk: int,
    body: Chunks,
    token: str | None,
    latencies: list[float] | None = None,
) -> float:
    """Create a tus upload and PATCH it full; seconds taken. Each PATCH's
    seconds (request sent to response read) go to ``latencies``."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.monotonic()
    connection.request(
        "POST",
        path,
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size), **auth},
    )
    response = connection.getresponse()
    response.read()
    if response.status != 201:
        raise RuntimeError(f"create failed: {response.status}")
    location = response.getheader("Location") or ""
    target = (
        "/" + location.split("://", 1)[-1].split("/", 1)[1]
        if "://" in location
        else location
    )
    for offset in range(0, size, chunk):
        data = body.chunk(offset, min(chunk, size - offset))
        seconds = timed_patch(connection, target, offset, data, auth)
        if latencies is not None:
            latencies.append(seconds)
    elapsed = time.monotonic() - started
    connection.close()
    return elapsed


def range_upload(port: int, size: int, chunk: int, body: Chunks, token: str) -> float:
    """uploadd's Content-Range API: PUT raw chunks, then POST to complete."""
    auth = {"Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.monotonic()
    url = "/storage/tmp-upload/"
    for offset in range(0, size, chunk):
        data = body.chunk(offset, min(chunk, size - offset))
        connection.request(
            "PUT",
            url,
            body=data,
            headers={
                "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{size}",
                "Content-Type": "application/octet-stream",
                **auth,
            },
        )
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(
                f"chunk at {offset} failed: {response.status} {answer!r}"
            )
        if offset == 0:
            import json

            url = "/" + json.loads(answer)["url"].split("://", 1)[1].split("/", 1)[1]
    connection.request("POST", url, headers=auth)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"completion failed: {response.status}")
    elapsed = time.monotonic() - started
    connection.close()
    return elapsed


def single_upload(port: int, size: int, body: Chunks, token: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.monotonic()
    connection.putrequest("PUT", "/files/bench.bin")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    for offset in range(0, size, 8 * MIB):
        connection.send(body.chunk(offset, min(8 * MIB, size - offset)))
    response = connection.getresponse()
    response.read()
    if response.status != 201:
        raise RuntimeError(f"single upload failed: {response.status}")
    elapsed = time.monotonic() - started
    connection.close()
    return elapsed


def timed_patch(
    connection: http.client.HTTPConnection,
    target: str,
    offset: int,
    data: bytes,
    auth: dict[str, str],
) -> float:
    """One tus PATCH on an open connection; seconds from sending to the answer."""
    sent = time.monotonic()
    connection.request(
        "PATCH",
        target,
        body=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **auth,
        },
    )
    response = connection.getresponse()
    response.read()
    if response.status != 204:
        raise RuntimeError(f"PATCH at {offset} failed: {response.status}")
    return time.monotonic() - sent


def fixed_costs(port: int, token: str, body: Chunks, count: int) -> dict[str, float]:
    """Median milliseconds of a tus HEAD, a PATCH of one byte and a PATCH of
    1 MiB on one keep-alive connection, ``count`` of each, interleaved."""
    auth = {"Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "POST",
        "/uploads/",
        # One byte more than the PATCHes carry: the upload stays open.
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(count * (MIB + 1) + 1),
            **auth,
        },
    )
    response = connection.getresponse()
    response.read()
    if response.status != 201:
        raise RuntimeError(f"create failed: {response.status}")
    target = "/uploads/" + (response.getheader("Location") or "").rsplit("/", 1)[1]
    block = body.chunk(0, MIB)
    found: dict[str, list[float]] = {"HEAD": [], "PATCH 1 B": [], "PATCH 1 MiB": []}
    offset = 0
    for _ in range(count):
        sent = time.monotonic()
        connection.request("HEAD", target, headers={"Tus-Resumable": "1.0.0", **auth})
        connection.getresponse().read()
        found["HEAD"].append(time.monotonic() - sent)
        found["PATCH 1 B"].append(timed_patch(connection, target, offset, b"x", auth))
        offset += 1
        found["PATCH 1 MiB"].append(
            timed_patch(connection, target, offset, block, auth)
        )
        offset += MIB
    connection.request("DELETE", target, headers={"Tus-Resumable": "1.0.0", **auth})
    connection.getresponse().read()
    connection.close()
    return {name: statistics.median(t) * 1000 for name, t in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    size = parse_size(args.size)
    node_server = HERE / "peers" / "tus_node_server.mjs"
    if not (HERE / "peers" / "node_modules").exists() or not PEERS_VENV.exists():
        sys.exit("peers missing: run `make bench-peers` first")
    work = work_dir()
    body = Body()
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    costs: dict[str, dict[str, float]] = {}
    chunks = (MIB, 8 * MIB)
    try:
        for name in ("node", "tuspy", "durable", "cache"):
            (work / name).mkdir()
        with ExitStack() as stack:
            u_port, u_pid, token = stack.enter_context(
                running_uploadd(work / "durable", {})
            )
            c_port, c_pid, c_token = stack.enter_context(
                running_uploadd(work / "cache", {"storage-fsync": "false"})
            )
            n_port, n_pid = stack.enter_context(
                server(
                    [
                        "node",
                        str(node_server),
                        str(work / "node.port"),
                        str(work / "node"),
                    ],
                    work / "node.port",
                )
            )
            p_port, p_pid = stack.enter_context(
                server(
                    [
                        str(PEERS_VENV / "bin" / "python"),
                        str(HERE / "peers" / "tuspy_server.py"),
                        str(work / "tuspy.port"),
                        str(work / "tuspy"),
                    ],
                    work / "tuspy.port",
                )
            )
            runs: dict[str, tuple[int, Callable[[], float]]] = {
                "uploadd single request": (
                    u_pid,
                    lambda: single_upload(u_port, size, body, token),
                ),
            }
            for chunk in chunks:
                label = f"{chunk // MIB} MiB"
                for name, port, pid, key in (
                    ("uploadd", u_port, u_pid, token),
                    ("uploadd, page cache", c_port, c_pid, c_token),
                ):
                    tus = f"uploadd tus{name[7:]} {label}"
                    runs[tus] = (
                        pid,
                        lambda c=chunk, p=port, k=key: tus_upload(  # type: ignore[misc]
                            p, "/uploads/", size, c, body, k
                        ),
                    )
                    ranged = f"uploadd Content-Range{name[7:]} {label}"
                    runs[ranged] = (
                        pid,
                        lambda c=chunk, p=port, k=key: range_upload(  # type: ignore[misc]
                            p, size, c, body, k
                        ),
                    )
                runs[f"@tus/server {label}"] = (
                    n_pid,
                    lambda c=chunk: tus_upload(  # type: ignore[misc]
                        n_port, "/files", size, c, body, None
                    ),
                )
                runs[f"tuspyserver {label}"] = (
                    p_pid,
                    lambda c=chunk: tus_upload(  # type: ignore[misc]
                        p_port, "/files", size, c, body, None
                    ),
                )
            in_rounds(
                {
                    name: with_cpu(pid, run, cpu.setdefault(name, []), size)
                    for name, (pid, run) in runs.items()
                },
                args.rounds,
                size,
                times,
                lambda: clean(work),
            )
            costs["durable"] = fixed_costs(u_port, token, body, args.requests)
            costs["page cache"] = fixed_costs(c_port, c_token, body, args.requests)
            peaks = {
                "uploadd": peak_kib(u_pid),
                "uploadd, page cache": peak_kib(c_pid),
                "@tus/server": peak_kib(n_pid),
                "tuspyserver": peak_kib(p_pid),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    section = report(args, size, chunks, times, cpu, costs, peaks)
    write_section(Path(args.output), "## Resumable", section)
    print(section)


def with_cpu(
    pid: int, run: Callable[[], float], into: list[float], size: int
) -> Callable[[], float]:
    """``run``, also putting its server's CPU-seconds per GiB ``into``."""

    def measured() -> float:
        seconds, cpu = costed(pid, run, size)
        into.append(cpu)
        return seconds

    return measured


def report(
    args: argparse.Namespace,
    size: int,
    chunks: tuple[int, ...],
    times: dict[str, list[float]],
    cpu: dict[str, list[float]],
    costs: dict[str, dict[str, float]],
    peaks: dict[str, int],
) -> str:
    rate = median_rates(times, size)
    single = rate["uploadd single request"]
    table = [
        "| server and path | chunk | does | MiB/s (median) | server CPU-s/GiB "
        "| vs @tus/server | vs tuspyserver | vs uploadd single request |",
        "|---|---|---|---|---|---|---|---|",
        row(
            "uploadd single request",
            "whole",
            single,
            statistics.median(cpu["uploadd single request"]),
            "",
            "",
            "1.00x",
        ),
    ]
    for chunk in chunks:
        label = f"{chunk // MIB} MiB"
        node, tuspy = rate[f"@tus/server {label}"], rate[f"tuspyserver {label}"]
        for name in (
            "uploadd tus",
            "uploadd tus, page cache",
            "uploadd Content-Range",
            "uploadd Content-Range, page cache",
        ):
            mine = rate[f"{name} {label}"]
            table.append(
                row(
                    name,
                    label,
                    mine,
                    statistics.median(cpu[f"{name} {label}"]),
                    f"{mine / node:.2f}x",
                    f"{mine / tuspy:.2f}x",
                    f"{mine / single:.2f}x",
                )
            )
        for name, key, ratios in (
            ("@tus/server + @tus/file-store", "@tus/server", ("1.00x", "", "")),
            ("tuspyserver on uvicorn", "tuspyserver", ("", "1.00x", "")),
        ):
            table.append(
                row(
                    name,
                    label,
                    rate[f"{key} {label}"],
                    statistics.median(cpu[f"{key} {label}"]),
                    *ratios,
                )
            )
    cost_table = [
        "| uploadd | HEAD | PATCH of 1 byte | PATCH of 1 MiB "
        "| the PATCH's own cost (1 B minus HEAD) | moving 1 MiB (1 MiB minus 1 B) |",
        "|---|---|---|---|---|---|",
    ]
    for mode, found in costs.items():
        head, one, mib = found["HEAD"], found["PATCH 1 B"], found["PATCH 1 MiB"]
        cost_table.append(
            f"| {mode} | {head:.2f} ms | {one:.2f} ms | {mib:.2f} ms "
            f"| {one - head:.2f} ms | {mib - one:.2f} ms |"
        )
    memory = ", ".join(f"{name} {kib / 1024:.1f} MiB" for name, kib in peaks.items())
    return "\n".join(
        [
            f"## Resumable uploads: {args.size} in chunks",
            "",
            f"Command: `.venv/bin/python bench/resumable.py --size {args.size} "
            f"--rounds {args.rounds} --requests {args.requests}`",
            "",
            f"Machine: {machine()}; one keep-alive client connection sending chunks "
            "in order. tusd is not measured: no package registry ships it "
            "(bench/resumable.py says what was tried).",
            "",
            *table,
            "",
            f"Peak RSS (VmHWM) over the whole run: {memory}.",
            "",
            "### What one request costs",
            "",
            f"Medians of {args.requests} requests of each kind on one keep-alive "
            "connection to an open tus upload, interleaved: a HEAD is the floor "
            "every request pays (HTTP, the token, the upload's record); a PATCH "
            "of one byte adds its own bookkeeping (the writer's slot, the sink, "
            "closing and, durable, fsyncing the file, the offset's commit); "
            "a PATCH of 1 MiB adds moving the bytes.",
            "",
            *cost_table,
            "",
        ]
    )


def row(name: str, chunk: str, rate: float, cpu: float, *ratios: str) -> str:
    """One line of the report's table: a server, what it does, its rate."""
    return (
        f"| {name} | {chunk} | {DOES[name]} | {rate:.0f} | {cpu:.2f} | "
        + " | ".join(ratios)
        + " |"
    )


def clean(work: Path) -> None:
    """Drop stored files between runs so the disk does not fill."""
    for folder in (
        "durable/uploadd/files",
        "durable/uploadd/uploads",
        "cache/uploadd/files",
        "cache/uploadd/uploads",
        "node",
        "tuspy",
    ):
        target = work / folder
        if target.exists():
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
