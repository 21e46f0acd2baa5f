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
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from common import (
    HERE,
    MIB,
    Body,
    Chunks,
    in_rounds,
    machine,
    median_rates,
    parse_size,
    peak_kib,
    server,
    uploadd,
    write_section,
)

PEERS_VENV = HERE / "work" / "peers-venv"

# What each server does with the bytes besides writing them, as read in its
# source (uploadd's in this tree, the peers' in the versions bench/peers and
# `make bench-peers` pin); the "does" column of the report.
DOES = {
    # uploadd/ingest/sink.py: BlobFile.write_sha256 and .update_md5 hash every
    # byte of every body; .close fsyncs it ([storage] fsync, on by default),
    # then uploadd/uploads/appends.py Append.land (spans.py for Content-Range)
    # saves the new offset to SQLite (PRAGMA synchronous=FULL).
    "uploadd single request": "sha256 + md5 of every byte; fsync at the end",
    "uploadd tus": "sha256 + md5 of every byte; fsync + offset commit per chunk",
    "uploadd Content-Range": (
        "sha256 + md5 of every byte; fsync + offset commit per chunk"
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
        if latencies is not None:
            latencies.append(time.monotonic() - sent)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    size = parse_size(args.size)
    node_server = HERE / "peers" / "tus_node_server.mjs"
    if not (HERE / "peers" / "node_modules").exists() or not PEERS_VENV.exists():
        sys.exit("peers missing: run `make bench-peers` first")
    work = Path(
        tempfile.mkdtemp(prefix="uploadd-bench-", dir=os.environ.get("BENCH_DIR"))
    )
    body = Body()
    times: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    chunks = (MIB, 8 * MIB)
    try:
        command, port_file, env, token_of = uploadd(work)
        for name in ("node", "tuspy"):
            (work / name).mkdir()
        with ExitStack() as stack:
            u_port, u_pid = stack.enter_context(server(command, port_file, env))
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
            token = token_of()
            runs: dict[str, Callable[[], float]] = {
                "uploadd single request": lambda: single_upload(
                    u_port, size, body, token
                ),
            }
            for chunk in chunks:
                label = f"{chunk // MIB} MiB"
                runs[f"uploadd tus {label}"] = lambda c=chunk: tus_upload(  # type: ignore[misc]
                    u_port, "/uploads/", size, c, body, token
                )
                runs[f"uploadd Content-Range {label}"] = lambda c=chunk: range_upload(  # type: ignore[misc]
                    u_port, size, c, body, token
                )
                runs[f"@tus/server {label}"] = lambda c=chunk: tus_upload(  # type: ignore[misc]
                    n_port, "/files", size, c, body, None
                )
                runs[f"tuspyserver {label}"] = lambda c=chunk: tus_upload(  # type: ignore[misc]
                    p_port, "/files", size, c, body, None
                )
            in_rounds(runs, args.rounds, size, times, lambda: clean(work))
            peaks = {
                "uploadd": peak_kib(u_pid),
                "@tus/server": peak_kib(n_pid),
                "tuspyserver": peak_kib(p_pid),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rate = median_rates(times, size)
    single = rate["uploadd single request"]
    table = [
        "| server and path | chunk | does | MiB/s (median) | vs @tus/server "
        "| vs tuspyserver | vs uploadd single request |",
        "|---|---|---|---|---|---|---|",
        row("uploadd single request", "whole", single, "", "", "1.00x"),
    ]
    for chunk in chunks:
        label = f"{chunk // MIB} MiB"
        node, tuspy = rate[f"@tus/server {label}"], rate[f"tuspyserver {label}"]
        for name in ("uploadd tus", "uploadd Content-Range"):
            mine = rate[f"{name} {label}"]
            table.append(
                row(
                    name,
                    label,
                    mine,
                    f"{mine / node:.2f}x",
                    f"{mine / tuspy:.2f}x",
                    f"{mine / single:.2f}x",
                )
            )
        table.append(row("@tus/server + @tus/file-store", label, node, "1.00x", "", ""))
        table.append(row("tuspyserver on uvicorn", label, tuspy, "", "1.00x", ""))
    memory = ", ".join(f"{name} {kib / 1024:.1f} MiB" for name, kib in peaks.items())
    section = "\n".join(
        [
            f"## Resumable uploads: {args.size} in chunks",
            "",
            f"Command: `.venv/bin/python bench/resumable.py --size {args.size} "
            f"--rounds {args.rounds}`",
            "",
            f"Machine: {machine()}; one keep-alive client connection sending chunks "
            "in order. tusd is not measured: no package registry ships it "
            "(bench/resumable.py says what was tried).",
            "",
            *table,
            "",
            f"Peak RSS (VmHWM) over the whole run: {memory}.",
            "",
        ]
    )
    write_section(Path(args.output), "## Resumable", section)
    print(section)


def row(name: str, chunk: str, rate: float, *ratios: str) -> str:
    """One line of the report's table: a server, what it does, its rate."""
    return (
        f"| {name} | {chunk} | {DOES[name]} | {rate:.0f} | " + " | ".join(ratios) + " |"
    )


def clean(work: Path) -> None:
    """Drop stored files between runs so the disk does not fill."""
    for folder in ("uploadd/files", "uploadd/uploads", "node", "tuspy"):
        target = work / folder
        if target.exists():
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
