"""Cluster benchmark: fan-out against a single rsync, restore after a node's
death, and the pinger's CPU with 50 nodes.

    .venv/bin/python bench/cluster.py [--size 1G] [--files 1000]

Starts real `twistd noded` processes (each with its rsync daemon) and
uploadd on loopback. Writes the cluster section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from common import (
    BIN,
    HERE,
    MIB,
    Body,
    cpu_seconds,
    machine,
    parse_size,
    server,
    uploadd,
    write_section,
)

sys.path.insert(0, str(HERE.parent))
from noded import rsync


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def node_command(work: Path, name: str, secret: str) -> tuple[list[str], Path]:
    data = work / name
    data.mkdir()
    return [
        str(BIN / "twistd"),
        "--nodaemon",
        "--pidfile=",
        f"--logfile={data}.log",
        "noded",
        f"--node-id={name}",
        f"--zone={name}",
        f"--data-dir={data}",
        f"--cluster-secret={secret}",
        "--node-reserve=1M",
        "--amp-port=0",
        "--http-port=0",
        f"--rsync-port={free_port()}",
    ], data / "noded.ports"


def start_nodes(
    stack: ExitStack, work: Path, names: list[str], secret: str
) -> dict[str, Any]:
    nodes = {}
    for name in names:
        command, ports_file = node_command(work, name, secret)
        _, pid = stack.enter_context(server(command, ports_file))
        ports = json.loads(ports_file.read_text())
        nodes[name] = {"pid": pid, "ports": ports, "data": work / name}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(
                    ("127.0.0.1", ports["rsync"]), timeout=1
                ).close()
                break
            except OSError:
                time.sleep(0.1)
    return nodes


def request(port: int, token: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=600) as response:
        return json.loads(response.read() or b"null")


def wait(check: Callable[[], bool], within: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise RuntimeError("timed out")
        time.sleep(0.05)
    return time.monotonic() - started


def admin_token(work: Path) -> str:
    env = {**os.environ, "UPLOADD_DATA_DIR": str(work / "uploadd")}
    subprocess.run(
        [str(BIN / "uploadctl"), "user", "add", "root", "--scope", "admin"],
        input=b"root-password\n",
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [str(BIN / "uploadctl"), "token", "root", "--ttl", "12h"],
        env=env,
        check=True,
        capture_output=True,
    )
    return done.stdout.decode().strip()


def fan_out(work: Path, size: int) -> dict[str, float]:
    secret = secrets.token_hex(32)
    source = work / "big.bin"
    body = Body()
    with source.open("wb") as handle:
        for offset in range(0, size, 8 * MIB):
            handle.write(body.chunk(offset, min(8 * MIB, size - offset)))
    with ExitStack() as stack:
        nodes = start_nodes(stack, work, ["a", "b", "c", "lim"], secret)
        seeds = ",".join(f"{n}=127.0.0.1:{nodes[n]['ports']['amp']}" for n in "abc")
        command, port_file, env, token_of = uploadd(work)
        command += [
            f"--cluster-secret={secret}",
            f"--cluster-nodes={seeds}",
            "--cluster-replicas=3",
            "--cluster-ping-interval=0.5s",
        ]
        port, _ = stack.enter_context(server(command, port_file, env))
        token, admin = token_of(), admin_token(work)
        wait(
            lambda: all(
                n["health"] == "up"
                for n in request(port, admin, "GET", "/admin/nodes")["results"]
            ),
            20,
        )
        with source.open("rb") as handle:
            stored = request(port, token, "PUT", "/files/big.bin", handle)
        fan = wait(
            lambda: (
                len(request(port, token, "GET", f"/files/{stored['id']}")["replicas"])
                == 3
            ),
            600,
        )
        password = rsync.write_password_file(work / "pw", secret.encode())
        args = rsync.push_args(
            "rsync",
            source,
            "127.0.0.1",
            nodes["lim"]["ports"]["rsync"],
            stored["id"],
            password,
            60,
            10,
        )
        started = time.monotonic()
        subprocess.run(args, check=True)
        single = time.monotonic() - started
    source.unlink()
    return {"fan_out": fan, "single": single}


def restore(work: Path, files: int) -> dict[str, float]:
    secret = secrets.token_hex(32)
    with ExitStack() as stack:
        nodes = start_nodes(stack, work, ["r1", "r2", "r3"], secret)
        seeds = ",".join(f"{n}=127.0.0.1:{v['ports']['amp']}" for n, v in nodes.items())
        command, port_file, env, token_of = uploadd(work)
        command += [
            f"--cluster-secret={secret}",
            f"--cluster-nodes={seeds}",
            "--cluster-replicas=2",
            "--cluster-ping-interval=0.5s",
            "--cluster-ping-timeout=0.5s",
            "--cluster-repair-after=1s",
            "--cluster-repair-interval=1s",
        ]
        port, _ = stack.enter_context(server(command, port_file, env))
        token, admin = token_of(), admin_token(work)

        def counts() -> dict[str, int]:
            return {
                n["id"]: n["replicas"]
                for n in request(port, admin, "GET", "/admin/nodes")["results"]
            }

        wait(
            lambda: all(
                n["health"] == "up"
                for n in request(port, admin, "GET", "/admin/nodes")["results"]
            ),
            20,
        )
        for index in range(files):
            request(port, token, "PUT", f"/files/small{index}.bin", os.urandom(4096))
        wait(lambda: sum(counts().values()) >= 2 * files, 300)
        victim = max(counts(), key=lambda n: counts()[n])
        lost = counts()[victim]
        os.kill(nodes[victim]["pid"], signal.SIGKILL)
        died = time.monotonic()
        wait(
            lambda: (
                next(
                    n
                    for n in request(port, admin, "GET", "/admin/nodes")["results"]
                    if n["id"] == victim
                )["health"]
                == "down"
            ),
            30,
        )
        detected = time.monotonic() - died
        wait(
            lambda: sum(v for n, v in counts().items() if n != victim) >= 2 * files, 600
        )
        restored = time.monotonic() - died
        subprocess.run(
            ["pkill", "-f", f"config={nodes[victim]['data'].resolve()}/"], check=False
        )
    return {
        "lost": lost,
        "detected": detected,
        "restored": restored,
        "after_trigger": restored - detected - 1.0,
    }


def pinger_cpu(work: Path, count: int = 50, seconds: float = 30) -> dict[str, float]:
    secret = secrets.token_hex(32)
    fakes = work / "fakes"
    fakes.mkdir()
    with ExitStack() as stack:
        stack.enter_context(
            server(
                [
                    sys.executable,
                    str(HERE / "fake_nodes.py"),
                    str(count),
                    secret,
                    str(fakes),
                ],
                fakes / "fake-nodes.json",
                {**os.environ, "PYTHONPATH": str(HERE.parent)},
            )
        )
        ports = json.loads((fakes / "fake-nodes.json").read_text())
        seeds = ",".join(f"{n}=127.0.0.1:{p}" for n, p in ports.items())
        command, port_file, env, _ = uploadd(work)
        command += [f"--cluster-secret={secret}", f"--cluster-nodes={seeds}"]
        _, pid = stack.enter_context(server(command, port_file, env))
        time.sleep(8)
        before = cpu_seconds(pid)
        time.sleep(seconds)
        used = cpu_seconds(pid) - before
    return {"nodes": count, "cpu_percent": 100 * used / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name, run in (
        ("fan_out", lambda w: fan_out(w, parse_size(args.size))),
        ("restore", lambda w: restore(w, args.files)),
        ("pinger", pinger_cpu),
    ):
        work = Path(
            tempfile.mkdtemp(prefix="uploadd-bench-", dir=os.environ.get("BENCH_DIR"))
        )
        try:
            results[name] = run(work)
            print(name, results[name], flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    fan, rest, ping = results["fan_out"], results["restore"], results["pinger"]
    rows = [
        (
            f"{args.size} to 3 nodes, upload done to 3 verified copies",
            f"{fan['fan_out']:.1f} s",
            "",
        ),
        ("one plain rsync of the same file (the limit)", f"{fan['single']:.1f} s", ""),
        (
            "fan-out / single rsync",
            f"{fan['fan_out'] / fan['single']:.2f}x",
            "1.3x or better",
        ),
        (
            "copies lost with the killed node",
            f"{rest['lost']:.0f} of {2 * args.files}",
            "",
        ),
        (
            "node seen DOWN after",
            f"{rest['detected']:.1f} s",
            "3 x ping + timeout = 2 s",
        ),
        ("count restored, from the death", f"{rest['restored']:.1f} s", ""),
        (
            "count restored, from the repair trigger",
            f"{rest['after_trigger']:.1f} s",
            "within 60 s",
        ),
        (
            f"pinger CPU with {ping['nodes']} nodes, 2 s interval",
            f"{ping['cpu_percent']:.1f}% of a core",
            "",
        ),
    ]
    section = "\n".join(
        [
            "## Cluster: fan-out, repair, pinger",
            "",
            "Command: `.venv/bin/python bench/cluster.py "
            f"--size {args.size} --files {args.files}`",
            "",
            f"Machine: {machine()}; real noded processes with their rsync daemons.",
            "",
            "| measure | result | target |",
            "|---|---|---|",
            *(f"| {label} | {value} | {target} |" for label, value, target in rows),
            "",
        ]
    )
    write_section(Path(args.output), "## Cluster", section)
    print(section)


if __name__ == "__main__":
    main()
