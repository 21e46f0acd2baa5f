"""Debian's S3 command-line clients against a real uploadd: awscli 2.9
(``/usr/bin/aws``, which sends no checksum trailers) and rclone
(``/usr/bin/rclone``), each configured only by files in a temporary HOME.

awscli makes a bucket, copies 100 MiB up (a multipart upload of 8 MiB
parts, its default) and back down, lists, syncs a tree of nested folders
with spaces, unicode and URL-special characters in its names up and down,
reads an object's head and removes one key and then the rest; rclone
copies a tree up (its large file in parts), checks sizes and md5 sums,
copies it down, lists and deletes it. Every byte that comes back is
compared with its source, also by sha256, and every object is a file of
the main API (``GET /files``) with the source's sha256 until it is
deleted.

Each command and its key output lines are printed (``pytest -s`` shows
them) so a run reads as a transcript.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.integration.s3daemon import REGION, Key, S3Daemon, running, sha256

pytestmark = pytest.mark.integration

#: Debian's clients, by path: another ``aws`` first on PATH (pip, pyenv)
#: is a newer client that signs and checksums otherwise.
AWS = Path("/usr/bin/aws")
RCLONE = Path("/usr/bin/rclone")

MiB = 1024 * 1024
#: How many output lines of a command the transcript shows (the first
#: and the last few: where rclone and awscli sum up).
SHOWN = 8


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Daemon]:
    yield from running(tmp_path_factory.mktemp("s3cli") / "uploadd")


@attrs.frozen
class Shell:
    """Debian's awscli and rclone, run in ``work`` with a HOME of their own
    that holds their configuration and alice's key, and nothing of the
    caller's environment but PATH's system folders and a UTF-8 locale."""

    work: Path
    endpoint: str

    @classmethod
    def made(cls, work: Path, endpoint: str, key: Key) -> Shell:
        for program in (AWS, RCLONE):
            if not program.exists():
                pytest.fail(f"{program} is not installed (make setup installs it)")
        home = work / "home"
        (home / ".aws").mkdir(parents=True)
        (home / ".aws" / "config").write_text(
            "[default]\n"
            f"region = {REGION}\n"
            # One attempt: a failure shows at once rather than retried away.
            "retry_mode = standard\n"
            "max_attempts = 1\n"
            "s3 =\n"
            "    addressing_style = path\n"
        )
        (home / ".aws" / "credentials").write_text(
            "[default]\n"
            f"aws_access_key_id = {key.key_id}\n"
            f"aws_secret_access_key = {key.secret}\n"
        )
        (home / "rclone.conf").write_text(
            "[uploadd]\n"
            "type = s3\n"
            "provider = Other\n"
            f"endpoint = {endpoint}\n"
            f"access_key_id = {key.key_id}\n"
            f"secret_access_key = {key.secret}\n"
            f"region = {REGION}\n"
            "force_path_style = true\n"
            # Files over 5 MiB go in 5 MiB parts (rclone's default
            # threshold is 200 MiB), so its multipart path is proved too.
            "upload_cutoff = 5M\n"
            "chunk_size = 5M\n"
        )
        return cls(work, endpoint)

    @property
    def home(self) -> Path:
        return self.work / "home"

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "LC_ALL": "C.UTF-8",
            "AWS_CONFIG_FILE": str(self.home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / ".aws" / "credentials"),
            "RCLONE_CONFIG": str(self.home / "rclone.conf"),
        }

    def run(self, *command: str, exits: int = 0) -> list[str]:
        """Run ``command`` in ``work``; its output lines (stdout, then
        stderr, where rclone logs), printed as a transcript. An exit
        status other than ``exits`` fails the test with the whole output."""
        shown = " ".join(f"'{a}'" if " " in a or not a else a for a in command)
        print(f"\n$ {shown}")
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = [x for x in (done.stdout + done.stderr).splitlines() if x.strip()]
        shown_lines = lines
        if len(lines) > SHOWN + 1:
            skipped = [f"[... {len(lines) - SHOWN} more lines]"]
            shown_lines = lines[: SHOWN - 3] + skipped + lines[-3:]
        for line in shown_lines:
            print(f"  {line}")
        print(f"  [exit {done.returncode}, {time.monotonic() - started:.1f} s]")
        assert done.returncode == exits, (command, done.stdout, done.stderr)
        return lines

    def aws(self, *args: str, exits: int = 0) -> list[str]:
        return self.run(str(AWS), "--endpoint-url", self.endpoint, *args, exits=exits)

    def rclone(self, *args: str) -> list[str]:
        # One try each: a failure shows at once rather than retried away.
        return self.run(
            str(RCLONE), "--retries", "1", "--low-level-retries", "1", *args
        )


@pytest.fixture
def shell(tmp_path: Path, s3: S3Daemon, alice: Key) -> Shell:
    return Shell.made(tmp_path, s3.endpoint, alice)


def bucket_name(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:10]}"


def library(s3: S3Daemon) -> dict[str, set[str]]:
    """alice's files in the main API (``GET /files``): the sha256 sums
    under each file name."""
    found = s3.daemon.json("GET", "/files?page_size=1000")
    assert found["count"] <= len(found["results"]), "more files than one page"
    names: dict[str, set[str]] = {}
    for file in found["results"]:
        names.setdefault(file["filename"], set()).add(file["sha256"])
    return names


def make_tree(root: Path, tag: str) -> dict[str, bytes]:
    """A few dozen files of random bytes in nested folders, named with
    spaces, accents, other scripts, emoji and characters URLs and
    signatures encode (every name carries ``tag``, so each tree's files
    are told apart in the library), one of them empty and one of 9 MiB;
    their contents by path relative to ``root``."""
    sizes = random.Random(tag)
    folders = [
        "",
        "docs",
        "docs/deep/deeper",
        "with space/and more",
        "ünïcødé földer",
        "日本語",
    ]
    names = [f"{folders[i % len(folders)]}/note {i} é {tag}.txt" for i in range(30)]
    names += [
        f"a+b & c%20 {tag}.txt",
        f"hash#q?x=1;y {tag}.txt",
        f"tilde~(1)[2]{{3}}'q' {tag}.txt",
        f"emoji 🎉 {tag}.txt",
        f"日本語/ファイル {tag}.bin",
        f"docs/empty {tag}.txt",
        f"big/nine MiB {tag}.bin",
    ]
    tree = {}
    for name in names:
        path = name.lstrip("/")
        if "empty" in name:
            data = b""
        elif "nine MiB" in name:
            data = os.urandom(9 * MiB)
        else:
            data = os.urandom(sizes.randrange(1, 256 * 1024))
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        tree[path] = data
    return tree


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def same_tree(got: dict[str, bytes], sent: dict[str, bytes]) -> None:
    """The same paths, each with the same bytes and sha256."""
    assert sorted(got) == sorted(sent)
    for path, data in sent.items():
        assert (len(got[path]), sha256(got[path])) == (len(data), sha256(data)), path
        assert got[path] == data, path


def in_library(s3: S3Daemon, tree: dict[str, bytes]) -> None:
    """Each file of ``tree`` is a file of the main API with its sha256."""
    files = library(s3)
    for path, data in tree.items():
        assert sha256(data) in files.get(path.rsplit("/", 1)[-1], set()), path


def not_in_library(s3: S3Daemon, tree: dict[str, bytes]) -> None:
    files = library(s3)
    for path in tree:
        assert path.rsplit("/", 1)[-1] not in files, path


def json_of(lines: list[str]) -> Any:
    return json.loads("\n".join(lines))


def by_path(lines: list[str]) -> dict[str, str]:
    """rclone's ``VALUE PATH`` lines (``ls``, ``md5sum``) by path."""
    found = {}
    for line in lines:
        value, path = line.strip().split(" ", 1)
        found[path.lstrip()] = value
    return found


def multipart_etag(data: bytes, part: int) -> str:
    """The entity tag S3 gives an object made of ``part``-sized parts."""
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def test_awscli_copies_100_mib_up_in_parts_lists_it_and_copies_it_back(
    s3: S3Daemon, shell: Shell
) -> None:
    """``aws s3 mb`` makes a bucket; ``aws s3 cp`` sends 100 MiB as a
    multipart upload of 8 MiB parts (the entity tag says 13 parts) that
    becomes one file of the main API with the source's sha256; ``aws s3
    ls`` lists the bucket, the prefix and the object; ``aws s3api
    head-object`` reads its size and tag; ``aws s3 cp`` brings the same
    bytes back; ``aws s3 rm`` removes the object and its file, and ``aws
    s3 rb`` the empty bucket."""
    [version] = shell.run(str(AWS), "--version")
    assert version.startswith("aws-cli/2.9."), version
    bucket = bucket_name("awscli")
    data = os.urandom(100 * MiB)
    (shell.work / "hundred.bin").write_bytes(data)
    key = "big/one hundred MiB.bin"

    assert shell.aws("s3", "mb", f"s3://{bucket}") == [f"make_bucket: {bucket}"]
    sent = shell.aws("s3", "cp", "hundred.bin", f"s3://{bucket}/{key}", "--no-progress")
    assert sent == [f"upload: ./hundred.bin to s3://{bucket}/{key}"]
    s3.settle()

    assert bucket in " ".join(shell.aws("s3", "ls"))
    assert [x.split() for x in shell.aws("s3", "ls", f"s3://{bucket}/")] == [
        ["PRE", "big/"]
    ]
    [listed] = shell.aws("s3", "ls", f"s3://{bucket}/big/")
    assert listed.split(None, 3)[2:] == [str(len(data)), "one hundred MiB.bin"]
    head = json_of(shell.aws("s3api", "head-object", "--bucket", bucket, "--key", key))
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == multipart_etag(data, 8 * MiB)
    assert head["ETag"].endswith('-13"')
    assert sha256(data) in library(s3)["one hundred MiB.bin"]

    got = shell.aws("s3", "cp", f"s3://{bucket}/{key}", "back.bin", "--no-progress")
    assert got == [f"download: s3://{bucket}/{key} to ./back.bin"]
    back = (shell.work / "back.bin").read_bytes()
    assert (len(back), sha256(back)) == (len(data), sha256(data))
    assert back == data

    [removed] = shell.aws("s3", "rm", f"s3://{bucket}/{key}")
    assert removed == f"delete: s3://{bucket}/{key}"
    assert shell.aws("s3", "ls", f"s3://{bucket}/", "--recursive") == []
    assert "one hundred MiB.bin" not in library(s3)
    assert shell.aws("s3", "rb", f"s3://{bucket}") == [f"remove_bucket: {bucket}"]


def test_awscli_syncs_a_tree_up_and_back_down_and_removes_it(
    s3: S3Daemon, shell: Shell
) -> None:
    """``aws s3 sync`` sends every file of a nested tree (names with
    spaces, unicode and URL-special characters, an empty file, one file
    in parts), each a file of the main API with its sha256; a second
    sync sends nothing; a sync into an empty folder brings the same tree
    back; ``aws s3 rm`` removes one key and ``--recursive`` the rest,
    with their files."""
    bucket = bucket_name("sync")
    tag = uuid.uuid4().hex[:6]
    tree = make_tree(shell.work / "tree", tag)
    shell.aws("s3", "mb", f"s3://{bucket}")

    sent = shell.aws("s3", "sync", "tree", f"s3://{bucket}/tree", "--no-progress")
    assert len(sent) == len(tree)
    assert all(line.startswith("upload: tree/") for line in sent)
    s3.settle()
    in_library(s3, tree)
    assert shell.aws("s3", "sync", "tree", f"s3://{bucket}/tree") == []
    listed = shell.aws("s3", "ls", f"s3://{bucket}/tree/", "--recursive")
    assert sorted(x.split(None, 3)[3] for x in listed) == sorted(
        f"tree/{path}" for path in tree
    )
    top = shell.aws("s3", "ls", f"s3://{bucket}/tree/")
    assert sorted(x.split(None, 1)[1] for x in top if x.split()[0] == "PRE") == sorted(
        {path.split("/")[0] + "/" for path in tree if "/" in path}
    )
    assert sorted(x.split(None, 3)[3] for x in top if x.split()[0] != "PRE") == sorted(
        path for path in tree if "/" not in path
    )
    folder = shell.aws("s3", "ls", f"s3://{bucket}/tree/日本語/")
    assert sorted(x.split(None, 3)[3] for x in folder) == sorted(
        path.split("/")[1] for path in tree if path.startswith("日本語/")
    )

    got = shell.aws("s3", "sync", f"s3://{bucket}/tree", "back", "--no-progress")
    assert len(got) == len(tree)
    same_tree(read_tree(shell.work / "back"), tree)

    one = f"a+b & c%20 {tag}.txt"
    assert shell.aws("s3", "rm", f"s3://{bucket}/tree/{one}") == [
        f"delete: s3://{bucket}/tree/{one}"
    ]
    assert one not in library(s3)
    rest = shell.aws("s3", "rm", f"s3://{bucket}/tree", "--recursive")
    assert len(rest) == len(tree) - 1
    assert shell.aws("s3", "ls", f"s3://{bucket}", "--recursive") == []
    not_in_library(s3, tree)
    assert shell.aws("s3", "rb", f"s3://{bucket}") == [f"remove_bucket: {bucket}"]


def test_rclone_copies_checks_lists_and_deletes_a_tree(
    s3: S3Daemon, shell: Shell
) -> None:
    """``rclone copy`` sends a nested tree (its 9 MiB file in 5 MiB parts),
    each file one of the main API with its sha256; ``rclone check`` finds
    every size and md5 sum equal (the multipart file's md5 from the
    metadata rclone stored with it); ``rclone copy`` brings the same tree
    back; ``rclone lsf`` and ``ls`` list every key with its size;
    ``rclone delete`` removes them all with their files, and ``rclone
    rmdir`` the bucket."""
    assert shell.run(str(RCLONE), "version")[0].startswith("rclone v1.")
    bucket = bucket_name("rclone")
    tag = uuid.uuid4().hex[:6]
    tree = make_tree(shell.work / "tree", tag)
    remote = f"uploadd:{bucket}"
    shell.rclone("mkdir", remote)

    sent = shell.rclone("copy", "tree", f"{remote}/tree", "-v")
    assert sum(": Copied (new)" in line for line in sent) == len(tree)
    s3.settle()
    in_library(s3, tree)
    checked = shell.rclone("check", "tree", f"{remote}/tree")
    assert any("0 differences found" in line for line in checked)
    assert any(f"{len(tree)} matching files" in line for line in checked)
    assert not any("could not be checked" in line for line in checked)
    assert by_path(shell.rclone("md5sum", remote)) == {
        f"tree/{path}": hashlib.md5(data).hexdigest() for path, data in tree.items()
    }
    nine = next(path for path in tree if path.startswith("big/"))
    head = json_of(
        shell.aws("s3api", "head-object", "--bucket", bucket, "--key", f"tree/{nine}")
    )
    assert head["ETag"] == multipart_etag(tree[nine], 5 * MiB)
    # rclone keeps the md5 of what it sends in parts as metadata.
    md5 = base64.b64encode(hashlib.md5(tree[nine]).digest()).decode()
    assert head["Metadata"]["md5chksum"] == md5

    got = shell.rclone("copy", f"{remote}/tree", "back", "-v")
    assert sum(": Copied (new)" in line for line in got) == len(tree)
    same_tree(read_tree(shell.work / "back"), tree)

    keys = shell.rclone("lsf", "-R", "--files-only", remote)
    assert sorted(keys) == sorted(f"tree/{path}" for path in tree)
    assert by_path(shell.rclone("ls", remote)) == {
        f"tree/{path}": str(len(data)) for path, data in tree.items()
    }

    deleted = shell.rclone("delete", remote, "-v")
    assert sum(": Deleted" in line for line in deleted) == len(tree)
    assert shell.rclone("lsf", "-R", remote) == []
    not_in_library(s3, tree)
    shell.rclone("rmdir", remote)
    assert bucket not in " ".join(shell.aws("s3", "ls"))
