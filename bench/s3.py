"""S3 benchmark: one file of random bytes on disk into uploadd by Debian's
awscli through the S3 API, by tus in 8 MiB chunks and by one request.

    .venv/bin/python bench/s3.py [--size 1G] [--rounds 3]

One uploadd on its defaults (fsync on) with its S3 listener, an access key
made by ``uploadctl s3-key create`` and a bucket. Each round sends the same
file three ways, one after another: ``aws s3 cp`` of Debian's awscli
(``/usr/bin/aws``, as it comes: a multipart upload of 8 MiB parts, 10 at a
time), bench/resumable.py's tus client (one keep-alive connection, 8 MiB
PATCHes in order) and its single ``PUT /files/{name}`` with a
Content-Length, both reading the file. For each run: MiB/s (wall time; for
awscli, of the whole command, its start-up included), uploadd's
CPU-seconds (utime + stime of its process and threads, /proc/PID/stat),
the client's, and uploadd's peak RSS during the run (VmHWM from
/proc/PID/status, reset before each run through /proc/PID/clear_refs).
Files are deleted through the API between runs. Rounds are interleaved;
medians are reported. Writes the S3 section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from common import (
    BIN,
    HERE,
    MIB,
    cpu_seconds,
    in_rounds,
    machine,
    parse_size,
    peak_kib,
    server,
    uploadd,
    work_dir,
    write_section,
)
from resumable import single_upload, tus_upload

#: Debian's awscli (2.9), by path: another ``aws`` first on PATH is another
#: client.
AWS = Path("/usr/bin/aws")
REGION = "us-east-1"
CHUNK = 8 * MIB
BUCKET = "bench"


class FileChunks:
    """A file's bytes, a chunk at a time (the clients' body)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def chunk(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        os.close(self._fd)


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for offset in range(0, size, CHUNK):
            out.write(os.urandom(min(CHUNK, size - offset)))


def filesystem_of(path: Path) -> str:
    found = subprocess.run(
        ["findmnt", "--noheadings", "--output", "FSTYPE", "--target", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return found or "a filesystem findmnt does not name"


def reset_peak(pid: int) -> None:
    """Start VmHWM of ``pid`` again from its current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def children_cpu() -> float:
    """CPU-seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Awscli:
    """Debian's awscli with a HOME of its own: config (region, path-style)
    and the key's credentials, nothing else of ours in its environment."""

    def __init__(self, home: Path, endpoint: str, key_id: str, secret: str) -> None:
        (home / ".aws").mkdir(parents=True)
        (home / ".aws" / "config").write_text(
            f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
        )
        (home / ".aws" / "credentials").write_text(
            "[default]\n"
            f"aws_access_key_id = {key_id}\n"
            f"aws_secret_access_key = {secret}\n"
        )
        self._endpoint = endpoint
        self._env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "LC_ALL": "C.UTF-8",
            "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        }

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [str(AWS), "--endpoint-url", self._endpoint, *args],
            env=self._env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"aws {' '.join(args)}: {done.stderr}")
        return done.stdout


class Api:
    """The main API as user 'bench'."""

    def __init__(self, port: int, token: str) -> None:
        self._base = f"http://127.0.0.1:{port}"
        self._token = token

    def _call(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(
            self._base + path,
            method=method,
            headers={"Authorization": f"Bearer {self._token}"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            body: bytes = response.read()
            return body

    def files(self) -> list[dict[str, object]]:
        found: list[dict[str, object]] = json.loads(
            self._call("GET", "/files?page_size=1000")
        )["results"]
        return found

    def delete_all(self) -> None:
        for file in self.files():
            self._call("DELETE", f"/files/{file['id']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    size = parse_size(args.size)
    if not AWS.exists():
        raise SystemExit(f"{AWS} is missing: run `make setup` (Debian's awscli)")
    work = work_dir()
    source = work / "source.bin"
    fstype = filesystem_of(work)
    times: dict[str, list[float]] = {}
    server_cpu: dict[str, list[float]] = {}
    client_cpu: dict[str, list[float]] = {}
    peaks: dict[str, list[int]] = {}
    try:
        write_random(source, size)
        body = FileChunks(source)
        settings = {"s3-enabled": "true", "s3-endpoint": "tcp:0:interface=127.0.0.1"}
        command, port_file, env, token_of = uploadd(work, settings)
        with server(command, port_file, env) as (port, pid):
            data = port_file.parent
            s3_port = int((data / "s3.port").read_text())
            made = subprocess.run(
                [str(BIN / "uploadctl"), "s3-key", "create", "bench"],
                env={**env, "UPLOADD_DATA_DIR": str(data)},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            fields = {
                name.strip(): value.strip()
                for name, _, value in (x.partition(":") for x in made.splitlines())
            }
            aws = Awscli(
                work / "awshome",
                f"http://127.0.0.1:{s3_port}",
                fields["access key id"],
                fields["secret access key"],
            )
            version = aws("--version").split()[0]
            started = []
            for _ in range(3):
                at = time.monotonic()
                aws("--version")
                started.append(time.monotonic() - at)
            aws("s3", "mb", f"s3://{BUCKET}")
            token = token_of()
            api = Api(port, token)
            body.chunk(0, size)  # the file in the page cache for every client
            rounds = iter(range(1_000_000))

            def awscli() -> tuple[float, float]:
                at, before = time.monotonic(), children_cpu()
                key = f"s3://{BUCKET}/round-{next(rounds)}.bin"
                aws("s3", "cp", str(source), key, "--no-progress")
                return time.monotonic() - at, children_cpu() - before

            def in_process(
                run: Callable[[], float],
            ) -> Callable[[], tuple[float, float]]:
                def measured() -> tuple[float, float]:
                    before = time.process_time()
                    return run(), time.process_time() - before

                return measured

            clients: dict[str, Callable[[], tuple[float, float]]] = {
                "awscli": awscli,
                "tus": in_process(
                    lambda: tus_upload(port, "/uploads/", size, CHUNK, body, token)
                ),
                "put": in_process(lambda: single_upload(port, size, body, token)),
            }

            def counted(name: str) -> Callable[[], float]:
                def run() -> float:
                    reset_peak(pid)
                    before = cpu_seconds(pid)
                    seconds, client = clients[name]()
                    server_cpu.setdefault(name, []).append(cpu_seconds(pid) - before)
                    client_cpu.setdefault(name, []).append(client)
                    peaks.setdefault(name, []).append(peak_kib(pid))
                    return seconds

                return run

            def after() -> None:
                stored = api.files()
                assert len(stored) == 1 and stored[0]["size"] == size, stored
                api.delete_all()

            in_rounds(
                {name: counted(name) for name in clients},
                args.rounds,
                size,
                times,
                after,
            )
        body.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    gib = size / (1024 * MIB)

    rate = {name: size / statistics.median(t) / MIB for name, t in times.items()}

    def per_gib(values: dict[str, list[float]], name: str) -> str:
        return f"{statistics.median(values[name]) / gib:.2f}"

    parts = -(-size // CHUNK)
    rows = {
        "awscli": f"Debian's awscli ({version}), `aws s3 cp`",
        "tus": "tus, 8 MiB PATCHes",
        "put": "one `PUT /files/{name}`",
    }
    table = [
        "| client | MiB/s (median) | vs one PUT | uploadd CPU-s per GiB "
        "| client CPU-s per GiB | uploadd peak RSS (VmHWM) |",
        "|---|---|---|---|---|---|",
    ]
    for name, client in rows.items():
        table.append(
            f"| {client} | {rate[name]:.0f} | {rate[name] / rate['put']:.2f}x "
            f"| {per_gib(server_cpu, name)} | {per_gib(client_cpu, name)} "
            f"| {max(peaks[name]) / 1024:.1f} MiB |"
        )
    section = "\n".join(
        [
            f"## S3 API: {args.size} from a file, awscli against tus and one PUT",
            "",
            f"Command: `.venv/bin/python bench/s3.py --size {args.size} "
            f"--rounds {args.rounds}`",
            "",
            f"Machine: {machine()}; clients and uploadd on one host over "
            "loopback; uploadd on its defaults (`[storage] fsync = true`), "
            f"its data directory on {fstype}, the S3 API on its own listener; "
            "the source is one file of random bytes, in the page cache for "
            "every client.",
            "",
            *table,
            "",
            "What each row sends, and what it costs whom:",
            "",
            f"- **awscli**: Debian's `/usr/bin/aws` as it comes: "
            f"CreateMultipartUpload, {parts} UploadParts of 8 MiB (its default "
            "part size), 10 at a time (its default concurrency), each with "
            "`Expect: 100-continue`, then CompleteMultipartUpload. awscli "
            "computes the md5 (Content-MD5) and the sha256 (the signed "
            "payload, as over plain HTTP) of every part. uploadd hashes every "
            "part as it lands (sha256 + md5, checking both) and fsyncs it; "
            "completing joins the parts with copy_file_range (in the kernel; "
            "it shares extents on btrfs or XFS, on ext4 it writes the bytes "
            "again), fsyncs the result and reads it once more, since the "
            "object's sha256 and md5 are not the parts'.",
            f"- **tus**: bench/resumable.py's client: POST, then {parts} "
            "PATCHes of 8 MiB in order on one keep-alive connection, reading "
            "the file. uploadd hashes every byte once (sha256 + md5) and "
            "fsyncs each chunk before it answers with the new offset.",
            "- **one PUT**: uploadd's single-request ingest (as bench/ingest.py "
            "measures it), sent by bench/resumable.py's single-request client "
            "reading the file: one `PUT /files/{name}` with a Content-Length. "
            "uploadd hashes every byte once and fsyncs once.",
            "",
            "MiB/s is the file's size over the client's wall time: for awscli "
            "the whole `aws s3 cp` command, its start-up included (`aws "
            f"--version` alone takes {min(started):.2f} s here). uploadd's CPU "
            "is utime + stime of its process and all its threads; the "
            "client's is awscli's process (waited-for child rusage) or the "
            "benchmark's own (tus and PUT run in it). All share the same two "
            "CPUs. Peak RSS is uploadd's VmHWM during each run (reset before "
            "it), the largest of the rounds.",
            "",
            "Rounds (MiB/s): "
            + "; ".join(
                f"{name} " + ", ".join(f"{size / t / MIB:.0f}" for t in ts)
                for name, ts in times.items()
            ),
            "",
        ]
    )
    write_section(Path(args.output), "## S3", section)
    print(section)


if __name__ == "__main__":
    main()
