"""The IETF resumable-upload draft's edges over raw sockets against a real
`twistd uploadd`: bodies that arrive with their headers, chunked bodies,
lengths reached without completing, refused creations, versions' own rules,
and tus left as it was."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.integration.daemon import Daemon, start
from tests.integration.test_rufh_wire import path_of
from tests.integration.wire import Exchange, Stream, request_head

pytestmark = pytest.mark.integration

PROBLEMS = "https://iana.org/assignments/http-problem-types#"
PARTIAL = {"Content_Type": "application/partial-upload"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start(
        tmp_path_factory.mktemp("uploadd"),
        f"--http-max-upload-size={64 << 20}",
        "--uploads-checkpoint=64K",
    )
    try:
        yield running
    finally:
        running.stop()


def send(
    daemon: Daemon,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    chunked: bool = False,
) -> Exchange:
    """One request on its own connection, head and body in one write (a
    chunked body in one chunk); every response to it, 1xx first."""
    headers = {"Authorization": f"Bearer {daemon.token}", **headers}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        headers.setdefault("Content-Length", str(len(body)))
        payload = body
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request_head(method, path, headers) + payload)
        stream = Stream(sock)
        if method == "HEAD":
            return Exchange((), stream.head(started, body=False))
        return stream.exchange(started)


def draft(version: int = 8, /, **more: str) -> dict[str, str]:
    found = {"Upload-Draft-Interop-Version": str(version)}
    found.update({k.replace("_", "-"): v for k, v in more.items()})
    return found


def open_uploads(daemon: Daemon) -> set[str]:
    return {r["id"] for r in daemon.json("GET", "/uploads/")["results"]}


# -- 1 ----------------------------------------------------------------------


def test_expect_100_continue_with_the_body_already_sent_is_answered_and_counted_once(
    daemon: Daemon,
) -> None:
    """A client that sends Expect: 100-continue and its body at once (curl
    does after a second; the body is small enough to come with the head):
    the creation's plan waits on the store, so the whole body is in before
    the plan is made. The 104 goes out, then ``release_continue`` reads the
    request line off the channel after Twisted deleted it (AttributeError):
    500, and the body is counted twice (``_abandon`` and the sink's abort
    both call ``Append.aborted``), so the upload's offset is past its
    length and past what is on disk."""
    exchange = send(
        daemon,
        "POST",
        "/uploads/",
        draft(Upload_Complete="?0", Upload_Length="5", Expect="100-continue"),
        b"hello",
    )
    assert sorted(a.status for a in exchange.interim) == [100, 104]
    location = next(a for a in exchange.interim if a.status == 104).headers["location"]
    time.sleep(0.5)  # what the request's end records, after its answer
    retrieved = send(daemon, "HEAD", path_of(location), draft())
    offset = int(retrieved.final.headers["upload-offset"])
    on_disk = (daemon.data_dir / "uploads" / f"{path_of(location)[9:]}.bin").stat()
    assert (exchange.final.status, offset) == (201, 5), (
        f"{exchange.final.status} {exchange.final.body!r}; offset {offset} of "
        f"an upload of length 5 with {on_disk.st_size} bytes on disk"
    )


# -- 2 ----------------------------------------------------------------------


def test_an_upload_complete_false_append_reaching_the_length_leaves_it_open(
    daemon: Daemon,
) -> None:
    """The draft: "the length and offset values do not determine whether an
    upload is complete ... The offset could match the length, but the
    upload can still be incomplete" (-05: "The upload is not automatically
    completed if the offset reaches the upload's final size"). A creation
    with Upload-Complete: ?0 whose bytes reach its Upload-Length is turned
    into the file anyway (``Append.land`` finishes on ``is_complete``),
    answered Upload-Complete: ?1 with the file's Location, not the upload's."""
    data = b"L" * 2000
    created = send(
        daemon,
        "POST",
        "/uploads/",
        draft(Upload_Complete="?0", Upload_Length=str(len(data))),
        data,
    )
    location = created.interim[0].headers["location"]
    assert created.final.status == 201
    assert created.final.header("upload-complete") == "?0", created.final.headers
    assert created.final.header("location") == location
    retrieved = send(daemon, "HEAD", path_of(location), draft())
    assert retrieved.final.header("upload-complete") == "?0"
    finished = send(
        daemon,
        "PATCH",
        path_of(location),
        draft(Upload_Offset=str(len(data)), Upload_Complete="?1", **PARTIAL),
    )
    assert finished.final.status == 201
    assert finished.final.json()["size"] == len(data)


# -- 3 ----------------------------------------------------------------------


def test_a_version_3_append_without_upload_incomplete_is_the_last_part(
    daemon: Daemon,
) -> None:
    """draft-01 (interop 3, iOS 17): "the last part of the upload does not
    have the Upload-Incomplete header", and an upload is complete once a
    request arrives "with the Upload-Incomplete header being omitted or set
    to false". ``_plan_append`` demands the field for every version: the
    last PATCH of a version 3 client is 400 and the upload never completes."""
    created = send(
        daemon, "POST", "/uploads/", draft(3, Upload_Incomplete="?1"), b"a" * 10
    )
    path = path_of(created.final.headers["location"])
    last = send(daemon, "PATCH", path, draft(3, Upload_Offset="10"), b"b" * 10)
    assert last.final.status == 201, last.final.body
    assert last.final.json()["size"] == 20


# -- 4 ----------------------------------------------------------------------


def test_a_refused_creation_leaves_no_upload_behind(daemon: Daemon) -> None:
    """A creation whose body is larger than its Upload-Length is refused
    (413) without a Location, so nobody can ever resume or cancel the
    upload; but ``_plan_create`` made the upload before ``begin_append``
    refused the body, and nothing removes it: it stays listed, with its
    data file, until it expires."""
    before = open_uploads(daemon)
    refused = send(
        daemon,
        "POST",
        "/uploads/",
        draft(Upload_Complete="?0", Upload_Length="100"),
        b"z" * 500,
    )
    assert refused.final.status in (400, 413)
    assert refused.final.header("location") is None
    assert open_uploads(daemon) - before == set()


# -- 5 ----------------------------------------------------------------------


def test_a_chunked_append_is_held_to_the_append_size_limits(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``[uploads] max_append_size`` ("the most one request may add") and
    ``min_append_size`` are announced in Upload-Limit but only checked
    against Content-Length: a chunked body (no Content-Length) of any size
    is appended (``_check_sizes`` returns when the body's size is unknown,
    and the sink's limit is the upload's room, not the append limit)."""
    sized = start(
        tmp_path_factory.mktemp("sized"),
        "--uploads-max-append-size=1000",
        "--uploads-min-append-size=100",
    )
    try:
        answers = {}
        for name, size in (("5000 bytes", 5000), ("10 bytes", 10)):
            created = send(sized, "POST", "/uploads/", draft(Upload_Complete="?0"))
            path = path_of(created.final.headers["location"])
            limit = created.final.headers["upload-limit"]
            assert "max-append-size=1000" in limit and "min-append-size=100" in limit
            answers[name] = send(
                sized,
                "PATCH",
                path,
                draft(Upload_Offset="0", Upload_Complete="?0", **PARTIAL),
                b"a" * size,
                chunked=True,
            ).final.status
    finally:
        sized.stop()
    assert answers == {"5000 bytes": 413, "10 bytes": 413}


# -- 6 ----------------------------------------------------------------------


def test_tus_requests_without_tus_resumable_still_get_412(daemon: Daemon) -> None:
    """tus: a request without Tus-Resumable is 412, whatever it names; so
    it was before the draft came. Now HEAD, PATCH and DELETE go to the
    draft first, which loads the upload before it knows the request is not
    its own: an unknown (or expired, or someone else's) upload is 404/410
    carrying Upload-Draft-Interop-Version and Upload-Complete instead."""
    unknown = "/uploads/0123456789abcdef0123456789abcdef"
    patch = {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    answers = {
        "HEAD": send(daemon, "HEAD", unknown, {}).final,
        "PATCH": send(daemon, "PATCH", unknown, patch, b"x").final,
        "DELETE": send(daemon, "DELETE", unknown, {}).final,
    }
    assert {m: a.status for m, a in answers.items()} == dict.fromkeys(answers, 412)
    assert all(
        a.header("upload-draft-interop-version") is None for a in answers.values()
    )


# -- 7 ----------------------------------------------------------------------


def test_an_unspoken_version_with_a_short_chunked_body_is_an_ordinary_upload(
    daemon: Daemon,
) -> None:
    """An interop version not spoken "gets an ordinary answer: its body
    becomes a file". With Upload-Length (tus-js-client always sends it) and
    a chunked body shorter than it, the upload is not complete after
    landing and ``finish`` hits ``assert body.interop is not None``: 500,
    and the upload it made (which nobody was told of) stays open."""
    before = open_uploads(daemon)
    answer = send(
        daemon,
        "POST",
        "/uploads/?name=short.txt",
        draft(99, Upload_Complete="?1", Upload_Length="100"),
        b"s" * 50,
        chunked=True,
    )
    assert answer.final.status < 500, answer.final.body
    assert open_uploads(daemon) - before == set()


# -- 8 ----------------------------------------------------------------------


def test_a_completing_chunked_body_short_of_upload_length_is_inconsistent(
    daemon: Daemon,
) -> None:
    """Upload-Complete: ?1 says the content is the rest of the upload, and
    Upload-Length says how long the upload is. A chunked body (no
    Content-Length, so ``_stated_length`` cannot compare) that ends short
    of it is answered 2xx Upload-Complete: ?0: the client's "this is all"
    is silently turned into an open upload instead of being refused as
    inconsistent-upload-length (with Content-Length the same request is)."""
    answer = send(
        daemon,
        "POST",
        "/uploads/",
        draft(Upload_Complete="?1", Upload_Length="1000"),
        b"c" * 300,
        chunked=True,
    )
    assert answer.final.status == 400, (answer.final.status, answer.final.headers)
    assert answer.final.json()["type"] == PROBLEMS + "inconsistent-upload-length"


# -- 9 ----------------------------------------------------------------------


def test_no_104_to_a_request_without_the_interop_version(daemon: Daemon) -> None:
    """The draft's version appendix (present in every draft up to the
    latest): "Server implementations of draft versions of the protocol MUST
    NOT send a 104 (Upload Resumption Supported) informational response
    when the interop version indicated by the Upload-Draft-Interop-Version
    header field in the request is missing". ``interop_of`` takes a missing
    version as the latest and the 104 goes out (labelled version 8), so a
    client of the final RFC, which sends no version, resumes against a
    draft server: exactly what the rule is there to prevent."""
    answer = send(daemon, "POST", "/uploads/", {"Upload-Complete": "?1"}, b"no version")
    assert answer.interim == (), [a.headers for a in answer.interim]


# -- 10 ---------------------------------------------------------------------


def test_options_on_a_put_target_that_creates_uploads_carries_upload_limit(
    daemon: Daemon,
) -> None:
    """PUT /files/<name> now creates resumable uploads. The draft (from -05,
    interop 6, to the latest): "When responding to an OPTIONS request
    without the Upload-Complete header field, if the resource that is the
    target of the request supports the creation of a resumable upload
    resource, the server MUST include the Upload-Limit header field". Only
    /uploads/ answers OPTIONS; /files/<name> is 405 without it."""
    answer = send(daemon, "OPTIONS", "/files/any.bin", draft())
    assert answer.final.status < 300, answer.final.status
    assert answer.final.header("upload-limit") is not None
