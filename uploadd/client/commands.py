"""The client's subcommands of uploadctl: ``login``, ``upload``, ``download``.

Exit status: 0 done, 1 a transfer or the sign-in failed (the message says
why; an interrupted transfer resumes when the command is run again), 2 a
mistake in the command, 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TextIO, TypeVar

from noded.settings import parse_size
from uploadd.client.download import Download, Exists
from uploadd.client.http import (
    NETWORK_ERRORS,
    Cancelled,
    HTTPFailure,
    check_url,
    detail_of,
    request,
)
from uploadd.client.progress import Display
from uploadd.client.state import Login, Logins, Uploads, state_dir
from uploadd.client.upload import Server, TransferError, TusUpload

COMMANDS = ("login", "upload", "download")
DEFAULT_URL = "http://127.0.0.1:8080"
FAILED, MISTAKE, INTERRUPTED = 1, 2, 130
T = TypeVar("T")


class Mistake(Exception):
    """A command that cannot run as given (exit 2)."""


def _chunk(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError:
        size = 0
    if size <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 16M, got {text!r}")
    return size


def _parallel(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1, got {text!r}")
    return int(text)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``login``, ``upload`` and ``download`` on uploadctl's parser."""
    url_help = (
        "the uploadd to talk to (default: the last one signed in to,"
        f" else {DEFAULT_URL})"
    )
    login = commands.add_parser(
        "login",
        help="sign in to an uploadd and keep its token for upload and download",
        description="Ask for the password (or read the first line of standard"
        " input), sign in and keep the token, readable by you only, in the state"
        " directory ($XDG_STATE_HOME/uploadd, else ~/.local/state/uploadd).",
    )
    login.add_argument("--url", help=url_help)
    login.add_argument("username", nargs="?", help="default: the last one used there")

    upload = commands.add_parser(
        "upload",
        help="upload files over tus, resuming an interrupted run",
        description="Upload each FILE over tus with a progress bar; run again"
        " after an interruption and each file continues from the bytes the server"
        " holds. The stored file's sha256 is checked against the local file's;"
        " then its URL and the local path are printed, one file a line.",
    )
    upload.add_argument("files", nargs="+", metavar="FILE", type=Path)
    upload.add_argument("--url", help=url_help)
    upload.add_argument(
        "--parallel",
        type=_parallel,
        default=1,
        metavar="N",
        help="upload N files at once (default 1)",
    )
    upload.add_argument(
        "--chunk",
        type=_chunk,
        default=_chunk("16M"),
        metavar="SIZE",
        help="bytes per PATCH, each checked by its sha256 (default 16M)",
    )

    download = commands.add_parser(
        "download",
        help="download a file, resuming an interrupted run",
        description="Download file ID (following the redirect to a storage node)"
        " into NAME.ID.part, continue an interrupted run from that part's size, and"
        " name it NAME once its sha256 is the server's.",
    )
    download.add_argument("id", help="the file's id")
    download.add_argument("--url", help=url_help)
    download.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the path to write, or a directory for the file's own name"
        " (default: its name, here)",
    )


def run(
    options: argparse.Namespace,
    environ: Mapping[str, str],
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one client command; its exit status."""
    logins = Logins(state_dir(environ) / "login.json")
    try:
        if options.command == "login":
            return login(options, logins, stdin, out)
        server = signed_in(logins, options.url)
        if options.command == "upload":
            return upload(options, server, environ, out, err)
        return download(options, server, out, err)
    except Mistake as error:
        err.write(f"uploadctl: {error}\n")
        return MISTAKE
    except (TransferError, HTTPFailure, *NETWORK_ERRORS) as error:
        err.write(f"uploadctl: {explain(error)}\n")
        return FAILED


def explain(error: BaseException) -> str:
    """An error's message, with what to do about a refused token."""
    if isinstance(error, HTTPFailure) and error.status == 401:
        return f"{error} (sign in again: uploadctl login)"
    return str(error)


def _base(logins: Logins, given: str | None) -> str:
    try:
        return check_url(given or logins.default_url() or DEFAULT_URL)
    except ValueError as error:
        raise Mistake(f"--url: {error}") from None


def login(
    options: argparse.Namespace, logins: Logins, stdin: TextIO, out: TextIO
) -> int:
    base = _base(logins, options.url)
    known = logins.get(base)
    username = options.username or (known.username if known else "")
    if not username and stdin.isatty():
        username = input("username: ").strip()
    if not username:
        raise Mistake("login: name the user (uploadctl login NAME)")
    if stdin.isatty():
        password = getpass.getpass(f"password of {username} at {base}: ")
    else:
        password = stdin.readline().rstrip("\r\n")
    url = f"{base}/auth/token"
    reply = request(
        "POST",
        url,
        {"Content-Type": "application/json", "Accept": "application/json"},
        json.dumps({"username": username, "password": password}).encode(),
    )
    if reply.status != 200:
        raise TransferError(f"signing in to {base} failed: {detail_of(reply.body)}")
    answer = reply.json()
    ttl = float(answer.get("expires_in") or 0)
    logins.save(Login(base, username, str(answer["token"]), time.time() + ttl))
    out.write(
        f"signed in to {base} as {username}; the token is good for"
        f" {_duration(ttl)} (kept in {logins.path})\n"
    )
    return 0


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def signed_in(logins: Logins, given: str | None) -> Server:
    """The server and the token kept for it; Mistake when there is none."""
    base = _base(logins, given)
    found = logins.get(base)
    if found is None:
        raise Mistake(f"not signed in to {base}: run uploadctl login --url {base}")
    if found.expires_at <= time.time():
        raise Mistake(
            f"the token for {base} has expired: run uploadctl login --url {base}"
        )
    return Server(base, found.username, found.token)


def _run_all(
    jobs: Sequence[Callable[[], T]], workers: int, cancel: threading.Event
) -> list[Future[T]] | None:
    """Run ``jobs`` on ``workers`` threads, each to its end; None when
    Ctrl-C came first: then ``cancel`` is set so that they stop at their
    next block, and they are waited for."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        pending = set(futures)
        try:
            while pending:  # a timeout, so that Ctrl-C is seen at once
                pending = wait(pending, timeout=0.5).not_done
        except KeyboardInterrupt:
            cancel.set()
            wait(futures)
            return None
    return futures


def upload(
    options: argparse.Namespace,
    server: Server,
    environ: Mapping[str, str],
    out: TextIO,
    err: TextIO,
) -> int:
    # A file named twice is uploaded once.
    paths = list({path.resolve(): path for path in options.files}.values())
    for path in paths:
        if not path.is_file():
            raise Mistake(f"{path}: not a file")
    uploads = Uploads(state_dir(environ) / "uploads.json")
    cancel = threading.Event()
    failed = 0
    with Display(err) as display:
        jobs = [
            TusUpload(server, path, options.chunk, uploads, cancel, display.track).run
            for path in paths
        ]
        done = _run_all(jobs, options.parallel, cancel)
    if done is None:
        err.write("uploadctl: interrupted; run the same command to resume\n")
        return INTERRUPTED
    for path, future in zip(paths, done, strict=True):
        error = future.exception()
        if error is None:
            out.write(f"{future.result().url}\t{path}\n")
        elif isinstance(
            error, (TransferError, HTTPFailure, Cancelled, *NETWORK_ERRORS)
        ):
            failed += 1
            err.write(f"uploadctl: {path}: {explain(error)}\n")
        else:
            raise error
    return FAILED if failed else 0


def download(
    options: argparse.Namespace, server: Server, out: TextIO, err: TextIO
) -> int:
    cancel = threading.Event()
    with Display(err) as display:
        job = Download(server, options.id, options.output, cancel, display.track)
        finished = _run_all([job.run], 1, cancel)
    if finished is None:
        err.write("uploadctl: interrupted; run the same command to resume\n")
        return INTERRUPTED
    (done,) = finished
    error = done.exception()
    if isinstance(error, Exists):
        raise Mistake(str(error))
    if error is not None:
        raise error
    out.write(f"{done.result().path}\n")
    return 0
