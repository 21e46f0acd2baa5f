"""The README's tour, executed: every shell block a user copies to talk to
a running uploadd (``http://127.0.0.1:8080`` under ``make run``) runs here,
command by command, against a real ``twistd uploadd`` with a storage node
beside it, as ``make run`` has, so the README cannot drift from the server.

How a block is read:

- a command is a line (with its ``\\`` continuations); ``&`` at its end
  runs it in the background, and the commands after it in the block are
  polled (retried for a while) until they succeed, as a user would;
- comment lines right after a command that begin with ``# {`` show what it
  prints: each ``"key": "value"`` there is checked against the JSON it
  printed, where ``...`` stands for anything and ``<name>`` for a value
  seen there first and put in place of ``<name>`` in the commands after;
  ``# Name: value`` lines after a ``curl -i`` do the same for headers;
- every curl must end in a 2xx answer (after redirects it was told to
  follow), and every command must exit 0.

Blocks in the sections of ``NOT_RUN`` are left out, each for its reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.integration.daemon import Daemon, ctl, eventually, start
from tests.integration.test_noded import SECRET, RunningNode, start_node
from tests.integration.test_transcode_tools import _write_pdf

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
SERVER = "127.0.0.1:8080"
#: Sections whose blocks talk to the server but are not run, and why.
NOT_RUN = {
    "Storage nodes": "it adds nodes at other machines' addresses (10.0.0.x), "
    "which a test on loopback must not reach",
}
MIB = 1024 * 1024


@attrs.frozen
class Command:
    text: str
    #: The comment lines after it showing what it prints, without the ``#``.
    shows: tuple[str, ...] = ()


@attrs.frozen
class Block:
    section: str
    commands: tuple[Command, ...]


def blocks(readme: str) -> Iterator[Block]:
    """Every ``sh`` block of the README that talks to the local server."""
    section, lines, fence = "", readme.splitlines(), None
    body: list[str] = []
    for line in lines:
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            opening = re.match(r"^(\s*)```sh\s*$", line)
            if opening:
                fence, body = opening.group(1), []
        elif line.strip() == "```":
            if any(f"http://{SERVER}" in text for text in body):
                yield Block(section, tuple(commands(body)))
            fence = None
        else:
            body.append(line.removeprefix(fence))
    assert fence is None, "an sh block is never closed"


def commands(lines: list[str]) -> Iterator[Command]:
    """The commands of a block, each with the output comment after it."""
    pending: list[str] = []
    current: str | None = None
    shows: list[str] = []
    showing = False  # inside a ``# {...}`` comment that goes on
    header = re.compile(r"^[A-Z][A-Za-z-]*: ")
    for line in lines:
        stripped = line.strip()
        if pending:
            pending.append(stripped)
            if not stripped.endswith("\\"):
                current, pending = " ".join(p.rstrip("\\").strip() for p in pending), []
            continue
        if stripped.startswith("#"):
            comment = stripped[1:].strip()
            if current is None:
                continue
            if showing or (not shows and comment[:1] == "{"):
                shows.append(comment)
                showing = not comment.endswith("}")
            elif header.match(comment) and not (shows and shows[0][:1] == "{"):
                shows.append(comment)
            continue
        if current is not None:
            yield Command(current, tuple(shows))
        current, shows = None, []
        if not stripped:
            continue
        if stripped.endswith("\\"):
            pending = [stripped]
        else:
            current = stripped
    if current is not None:
        yield Command(current, tuple(shows))


def pattern(template: str, seen: dict[str, str]) -> re.Pattern[str]:
    """A value shown in the README as a regular expression: ``...`` is
    anything, ``<name>`` the value seen before, or a new one to capture."""
    parts = []
    named: set[str] = set()
    for piece in re.split(r"(\.\.\.|<[a-z_]+>)", template):
        if piece == "...":
            parts.append(".*?")
        elif re.fullmatch(r"<[a-z_]+>", piece):
            name = piece[1:-1]
            if name in seen:
                parts.append(re.escape(seen[name]))
            elif name in named:
                parts.append(f"(?P={name})")
            else:
                named.add(name)
                # A whole value is taken whole; within a URL, one segment.
                part = ".+" if piece == template else "[^/?#&\\s]+"
                parts.append(f"(?P<{name}>{part})")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


def check_shown(shows: tuple[str, ...], printed: str, seen: dict[str, str]) -> None:
    """What the README shows against what the command printed: the
    ``{"key": "value", ...}`` of a JSON body, or ``Name: value`` headers of
    ``curl -i``; placeholders seen for the first time are learnt into
    ``seen``."""
    if shows[0].startswith("{"):
        check_json(" ".join(shows), printed, seen)
        return
    head = printed.replace("\r\n", "\n").split("\n\n")[0]
    headers = dict(
        (name.lower(), value.strip())
        for name, _, value in (line.partition(":") for line in head.split("\n")[1:])
    )
    for line in shows:
        name, _, value = line.partition(": ")
        assert name.lower() in headers, f"{name} is shown but not sent: {head}"
        found = pattern(value, seen).fullmatch(headers[name.lower()])
        assert found, f"{name}: {headers[name.lower()]!r} is not {value!r}"
        seen.update({k: v for k, v in found.groupdict().items() if v is not None})


def check_json(shows: str, printed: str, seen: dict[str, str]) -> None:
    document = json.loads(printed)
    pairs = re.findall(r'"(\w+)":\s*("(?:[^"\\]|\\.)*"|-?\d+|null|true|false)', shows)
    assert pairs, f"nothing to check in {shows!r}"
    for key, shown in pairs:
        assert key in document, f"{key!r} is shown but not printed: {printed}"
        value = json.loads(shown)
        if not isinstance(value, str):
            assert document[key] == value, (key, document[key])
            continue
        found = pattern(value, seen).fullmatch(str(document[key]))
        assert found, f"{key}: {document[key]!r} is not {value!r}"
        seen.update({k: v for k, v in found.groupdict().items() if v is not None})


@attrs.define
class Shell:
    """Runs README commands one at a time in ``cwd``, keeping the variables
    they set, with curl made to fail on an error answer and to report its
    final status and redirects."""

    cwd: Path
    port: int
    seen: dict[str, str] = attrs.field(factory=dict)
    background: list[tuple[str, subprocess.Popen[str]]] = attrs.field(factory=list)
    answers: list[tuple[str, int, int]] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        shims = self.cwd / ".shims"
        shims.mkdir()
        real = shutil.which("curl")
        assert real, "curl is not installed"
        curl = shims / "curl"
        curl.write_text(
            "#!/bin/sh\n"
            f"exec {real} --fail-with-body --write-out "
            "'%{stderr}answer %{http_code} %{num_redirects}\\n' \"$@\"\n"
        )
        curl.chmod(0o755)
        self.env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
        (self.cwd / ".state").write_text("")

    def script(self, command: Command) -> str:
        text = command.text.removesuffix("&").rstrip()
        text = text.replace(SERVER, f"127.0.0.1:{self.port}")
        for name in set(re.findall(r"<([a-z_]+)>", text)):
            assert name in self.seen, f"<{name}> is used before any command shows it"
            text = text.replace(f"<{name}>", self.seen[name])
        # Variables set by a statement of their own (first, or after "; ").
        keep = re.findall(r"(?:^|;\s+)([A-Za-z_][A-Za-z0-9_]*)=", text)
        saved = "".join(f"declare -p {name} >> .state\n" for name in keep)
        return f"set -eo pipefail\nsource .state\n{text}\n{saved}"

    def run(self, command: Command, poll: bool = False) -> None:
        script = self.script(command)
        if command.text.endswith("&"):
            process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self.background.append((command.text, process))
            return
        deadline = time.monotonic() + (30 if poll else 0)
        while True:
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            try:
                self.judge(command, done.returncode, done.stdout, done.stderr)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def judge(self, command: Command, code: int, out: str, err: str) -> None:
        where = f"{command.text}\n-> exit {code}\nstdout: {out[-2000:]}\nstderr: {err}"
        assert code == 0, where
        for status, redirects in re.findall(r"^answer (\d+) (\d+)$", err, re.M):
            self.answers.append((command.text, int(status), int(redirects)))
            assert 200 <= int(status) < 300, where
        if command.shows:
            check_shown(command.shows, out, self.seen)

    def finish(self) -> None:
        for text, process in self.background:
            out, err = process.communicate(timeout=180)
            self.judge(Command(text), process.returncode, out, err)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Daemon, RunningNode]]:
    """What ``make run`` starts: uploadd with ./var/uploadd as its data (and
    its admin from ``uploadctl bootstrap``), and one storage node beside it
    holding the one copy of every file. An upload is answered once the node
    has it, so the downloads after it are redirected there, as they are for
    a user who types the next command a moment later."""
    node = start_node(tmp_path / "node", "local")
    data_dir = tmp_path / "var" / "uploadd"
    data_dir.mkdir(parents=True)
    ctl(data_dir, "bootstrap")
    daemon = None
    try:
        daemon = start(
            data_dir,
            f"--cluster-secret={SECRET}",
            f"--cluster-nodes=local=127.0.0.1:{node.ports['amp']}",
            "--cluster-replicas=1",
            "--cluster-await-copy=true",
            "--cluster-ping-interval=0.5s",
        )
        admin = ctl(data_dir, "token", "admin").strip()
        running = daemon

        def node_up() -> bool:
            status, _, body = running.request(
                "GET", "/admin/nodes", Authorization=f"Bearer {admin}"
            )
            return status == 200 and json.loads(body)["results"][0]["health"] == "up"

        eventually(node_up, what="the storage node up")
        yield daemon, node
    finally:
        if daemon is not None:
            daemon.stop()
        node.stop()


def the_users_files(cwd: Path) -> None:
    """The files the tour names as the user's own."""
    (cwd / "movie.mp4").write_bytes(os.urandom(2 * MIB + 12345))
    (cwd / "movie-v2.mp4").write_bytes(os.urandom(300_000))
    (cwd / "notes.txt").write_text("tus, by hand\n" * 1000)
    (cwd / "big.iso").write_bytes(os.urandom(48 * MIB))
    _write_pdf(cwd / "deck.pdf", 2)


def test_the_readme_tour_runs_against_a_live_server(
    served: tuple[Daemon, RunningNode], tmp_path: Path
) -> None:
    """Each command of the README's curl blocks succeeds against a live
    uploadd with a node, printing what the README shows; the downloads are
    redirected to the node and followed, their bytes those of the range
    asked for; the chunked upload keeps the name it was given; the deck's
    slides are named as the README says."""
    daemon, _ = served
    readme = README.read_text()
    found = list(blocks(readme))
    sections = {block.section for block in found}
    for section in NOT_RUN:
        assert section in sections, f"NOT_RUN names {section!r}, no block of it"
    run = [block for block in found if block.section not in NOT_RUN]
    assert {"A tour with curl", "Resumable uploads"} <= {b.section for b in run}

    the_users_files(tmp_path)
    shell = Shell(tmp_path, daemon.port)
    for block in run:
        polling = False
        for command in block.commands:
            shell.run(command, poll=polling)
            polling = polling or command.text.endswith("&")
    shell.finish()

    movie = (tmp_path / "movie.mp4").read_bytes()
    assert (tmp_path / "head.bin").read_bytes() == movie[:1024]
    assert (tmp_path / "start.bin").read_bytes() == movie[:30000]
    downloads = [a for a in shell.answers if " -o " in a[0]]
    assert len(downloads) == 2 and all(redirects for _, _, redirects in downloads)

    # The chunked upload is a file named as the pieces said, whole.
    token = ctl(daemon.data_dir, "token", "admin").strip()
    listed = daemon.json(
        "GET", "/storage/files/", **{"Authorization": f"Bearer {token}"}
    )
    names = [entry["filename"] for entry in listed["results"]]
    assert "movie.mp4" in names and "part2" not in names

    # The slides of the deck, named as the renditions table says.
    table_row = next(line for line in readme.splitlines() if "`pdf-slides`" in line)
    said = re.findall(r"`(deck-slide-[^`]+)`", table_row)

    def slides() -> list[str] | None:
        shown = daemon.json(
            "GET",
            f"/files/{shell.seen['deck']}/renditions",
            **{"Authorization": f"Bearer {token}"},
        )
        if shown["status"] != "READY":
            return None
        deck = next(r for r in shown["renditions"] if r["profile"] == "pdf-slides")
        return [output["filename"] for output in deck["outputs"]]

    made = eventually(slides, 60, "the deck's slides")
    assert said and made[: len(said)] == said
