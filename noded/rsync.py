"""Pushing a file to a node's rsync daemon: the command, the process, the outcome.

Used by uploadd's replicator and by a node copying to another node. rsync's
own ``--timeout`` only catches a stalled transfer; ``deadline`` is a
wall-clock limit after which the process is killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from noded.reactor import IReactor

log = Logger()

USER = "uploadd"
MODULE = "replicas"
KILLED = -1

MEANINGS = {
    0: "success",
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories",
    5: "error starting the client-server protocol (auth, module or max connections)",
    10: "error in socket I/O (connection refused?)",
    11: "error in file I/O",
    12: "error in the rsync protocol data stream (stream closed)",
    20: "received SIGUSR1 or SIGINT",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    30: "timeout in data send/receive",
    35: "timeout waiting for the daemon connection",
    KILLED: "killed at uploadd's deadline",
}


def meaning(code: int) -> str:
    return MEANINGS.get(code, f"rsync exit code {code}")


def password(cluster_secret: bytes) -> str:
    """The rsync daemon password both sides derive from the cluster secret."""
    return hmac.new(cluster_secret, b"rsync password v1", hashlib.sha256).hexdigest()


def write_password_file(path: Path, cluster_secret: bytes) -> Path:
    """A 0600 file with the client password (rsync refuses looser modes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password(cluster_secret) + "\n")
    path.chmod(0o600)
    return path


def relative_path(file_id: str) -> str:
    """Where a replica lives inside the module: ``<ab>/<id>``."""
    return f"{file_id[:2]}/{file_id}"


def push_args(
    binary: str,
    source: Path,
    host: str,
    port: int,
    file_id: str,
    password_file: Path,
    timeout: int,
    contimeout: int,
) -> list[str]:
    """The argv that copies ``source`` to ``file_id`` on a node. No --partial
    or --inplace: rsync's temp-then-rename keeps a half copy out of place."""
    return [
        binary,
        "--quiet",
        "--times",
        "--mkpath",
        "--chmod=F640",
        f"--timeout={timeout}",
        f"--contimeout={contimeout}",
        f"--password-file={password_file}",
        str(source),
        f"rsync://{USER}@{host}:{port}/{MODULE}/{relative_path(file_id)}",
    ]


@attrs.frozen
class Outcome:
    code: int
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def meaning(self) -> str:
        return meaning(self.code)


class RsyncProcess(ProcessProtocol):
    """Collects stderr (bounded) and the exit code of one rsync run."""

    def __init__(self) -> None:
        self.ended: Deferred[Outcome] = Deferred()
        self._stderr = bytearray()
        self._killed = False

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2 and len(self._stderr) < 8192:
            self._stderr += data[: 8192 - len(self._stderr)]

    def kill(self) -> None:
        self._killed = True
        if self.transport is not None:
            with contextlib.suppress(ProcessExitedAlready):
                self.transport.signalProcess("KILL")

    def processEnded(self, reason: Failure) -> None:
        code = 0
        if self._killed:
            code = KILLED
        elif reason.check(ProcessTerminated):
            value: Any = reason.value
            code = value.exitCode if value.exitCode is not None else KILLED
        elif not reason.check(ProcessDone):
            code = KILLED
        self.ended.callback(
            Outcome(code, self._stderr.decode("utf-8", "replace").strip())
        )


async def run(reactor: IReactor, args: list[str], deadline: float) -> Outcome:
    """Run rsync with ``args``; kill it after ``deadline`` seconds."""
    process = RsyncProcess()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    reactor.spawnProcess(process, args[0], args, env=env)
    killer = reactor.callLater(deadline, process.kill)
    try:
        return await process.ended
    finally:
        if killer.active():
            killer.cancel()
