"""Every upload request is answered, and its upload slot comes back, on every
path: refused before the body, refused after a database read, after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, add_user, start
from tests.integration.wire import Answer, ask, hold

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_BODY = "application/offset+octet-stream"


def auth(token: str, **headers: str) -> dict[str, str]:
    """Headers of a tus request by the holder of ``token``."""
    return {"Authorization": f"Bearer {token}", **TUS, **headers}


def tus(daemon: Daemon, method: str, path: str, token: str, **headers: str) -> Answer:
    return ask(daemon.port, method, path, auth(token, **headers))


def create(daemon: Daemon, token: str, length: int, **headers: str) -> str:
    """A new tus upload of ``length`` bytes; its path."""
    made = tus(daemon, "POST", "/uploads/", token, Upload_Length=str(length), **headers)
    assert made.status == 201, made
    location = made.header("location")
    assert location is not None
    return "/uploads/" + location.rsplit("/", 1)[-1]


def appending(token: str, offset: int) -> dict[str, str]:
    return auth(token, Upload_Offset=str(offset), Content_Type=OFFSET_BODY)


def patch(
    daemon: Daemon, token: str, path: str, body: bytes, offset: int = 0
) -> Answer:
    return ask(daemon.port, "PATCH", path, appending(token, offset), body)


def in_flight(daemon: Daemon) -> int:
    count: int = daemon.json("GET", "/health")["uploads_in_flight"]
    return count


def test_every_refusal_on_an_upload_route_is_answered_at_once(tmp_path: Path) -> None:
    """Uploads refused by what the database says (unknown, terminated, final,
    someone else's, a stale offset, bad concatenations, an unknown
    Content-Range upload) are answered within a second with the right status
    as problem+json while their bodies are still unsent, before and after a
    restart empties every cache; no upload is left in flight."""
    data_dir = tmp_path / "uploadd"
    daemon = start(data_dir)
    alice = daemon.token
    bob = add_user(data_dir, "bob", "write", "bob-password")
    try:
        partial = create(daemon, alice, 3, Upload_Concat="partial")
        assert patch(daemon, alice, partial, b"abc").status == 204
        plain = create(daemon, alice, 3)
        final = tus(
            daemon, "POST", "/uploads/", alice, Upload_Concat=f"final;{partial}"
        )
        assert final.status == 201, final
        final_path = "/uploads/" + str(final.header("location")).rsplit("/", 1)[-1]
        ended = create(daemon, alice, 10)
        assert tus(daemon, "DELETE", ended, alice).status == 204
        open_upload = create(daemon, alice, 10 * MIB)
        assert patch(daemon, alice, open_upload, b"x" * MIB).status == 204
        bobs = create(daemon, bob, 3, Upload_Concat="partial")
        assert patch(daemon, bob, bobs, b"bob").status == 204
    finally:
        daemon.stop()

    def refusals(daemon: Daemon) -> list[tuple[str, Answer, int]]:
        body = b"y" * 65536  # of 4 MiB declared: the rest is never sent

        def body_patch(path: str, token: str, offset: int) -> Answer:
            return ask(
                daemon.port, "PATCH", path, appending(token, offset), body, 4 * MIB
            )

        def concat(*parts: str) -> Answer:
            return tus(
                daemon,
                "POST",
                "/uploads/",
                alice,
                Upload_Concat="final;" + " ".join(parts),
            )

        return [
            ("unknown upload", body_patch("/uploads/" + "0" * 32, alice, 0), 404),
            ("terminated upload", body_patch(ended, alice, 0), 404),
            ("final upload", body_patch(final_path, alice, 0), 403),
            ("someone else's upload", body_patch(open_upload, bob, MIB), 404),
            ("stale offset", body_patch(open_upload, alice, 0), 409),
            ("concat of someone else's", concat(partial, bobs), 404),
            ("concat of an unknown", concat("/uploads/" + "1" * 32), 404),
            ("concat of a non-partial", concat(plain), 400),
            (
                "unknown Content-Range upload",
                ask(
                    daemon.port,
                    "PUT",
                    "/storage/tmp-upload/" + "2" * 32 + "/",
                    {
                        "Authorization": f"Bearer {alice}",
                        "Content-Range": f"bytes 0-{4 * MIB - 1}/{8 * MIB}",
                    },
                    body,
                    4 * MIB,
                ),
                404,
            ),
        ]

    daemon = start(data_dir)
    try:
        for when in ("after a restart", "with warm caches"):
            for what, answer, status in refusals(daemon):
                assert (answer.status, answer.problem) == (status, True), (
                    when,
                    what,
                    answer,
                )
                assert answer.seconds < 1.0, (when, what, answer.seconds)
            assert in_flight(daemon) == 0
        # The refused requests changed nothing: the open upload resumes.
        assert patch(daemon, alice, open_upload, b"z" * MIB, MIB).status == 204
    finally:
        daemon.stop()


def test_refused_uploads_up_to_the_limit_leave_uploads_working(
    tmp_path: Path,
) -> None:
    """As many refused uploads as the server takes at once, their connections
    kept open and their bodies unsent, do not lock anyone out: an ordinary
    upload right after them is stored."""
    limit = 4
    data_dir = tmp_path / "uploadd"
    daemon = start(data_dir, f"--ingest-max-concurrent-uploads={limit}")
    try:
        held = [
            hold(
                daemon.port,
                "PATCH",
                "/uploads/" + f"{n:032x}",
                appending(daemon.token, 0),
                4 * MIB,
            )
            for n in range(limit)
        ]
        try:
            for sock in held:
                assert sock.recv(12) == b"HTTP/1.1 404"
            assert in_flight(daemon) == 0
            stored = ask(
                daemon.port,
                "PUT",
                "/files/after.bin",
                {"Authorization": f"Bearer {daemon.token}"},
                b"still works",
            )
            assert stored.status == 201, stored
        finally:
            for sock in held:
                sock.close()
    finally:
        daemon.stop()
