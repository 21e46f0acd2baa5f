"""Who may follow a deck: its owner, admins and holders of its share links;
to anyone else someone's file is a 404 on every route that names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest_twisted
from twisted.internet.task import Clock

from tests.support import Harness, Reply, auth, harness, pumped
from uploadd.api.live import Follower, LiveHub
from uploadd.auth.tokens import Principal
from uploadd.store.interface import Event
from uploadd.workers.wiring import WORKER


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def deck(h: Harness, token: str, slides: int = 4) -> str:
    """A PDF of ``token``'s user whose pdf-slides rendition is ready with
    ``slides`` slides (sent by a worker, as in production); its id."""
    stored = await h.call(
        "PUT",
        "/files/deck.pdf",
        data=b"%PDF-1.4 not really",
        headers={**auth(token), b"content-type": [b"application/pdf"]},
    )
    assert stored.code == 201, stored.body
    file_id: str = stored.json()["id"]
    worker = auth(h.parts.tokens.issue(WORKER, 3600))
    job = f"/files/{file_id}/renditions/pdf-slides"
    assert (await h.call("POST", f"{job}/start", headers=worker)).code == 200
    for index in range(slides):
        sent = await h.call(
            "PUT",
            f"{job}/{index}?attempt=1&filename=slide-{index + 1}.jpg",
            data=b"JPEG %d" % (index + 1),
            headers={**worker, b"content-type": [b"image/jpeg"]},
        )
        assert sent.code == 201, sent.body
    done = await h.call(
        "PATCH",
        job,
        json={"attempt": 1, "state": "ready", "outputs": slides},
        headers=worker,
    )
    assert done.code == 200, done.body
    return file_id


async def present(h: Harness, token: str, file_id: str, current: Any) -> Reply:
    return await h.call(
        "POST",
        f"/files/{file_id}/control",
        json={"current": current},
        headers=auth(token),
    )


def settle(h: Harness) -> None:
    """Let the outbox relay and the in-process bus run."""
    for _ in range(5):
        h.clock.advance(0)


@pytest_twisted.ensureDeferred()
async def test_someone_elses_file_is_a_404_on_every_route_that_names_it(
    tmp_path: Path,
) -> None:
    """bob asking for alice's deck by id gets exactly what he gets for an id
    that does not exist, a 404, on every route taking a file id (presenter
    state, control, listen and share links included); an admin is answered."""
    h = harness(tmp_path)
    alice, bob = h.user("alice"), h.user("bob")
    admin = h.user("root", "admin")
    file_id = await deck(h, alice)
    routes = [
        ("GET", "/files/{}"),
        ("GET", "/files/{}/content"),
        ("GET", "/files/{}/renditions"),
        ("GET", "/files/{}/control"),
        ("POST", "/files/{}/control"),
        ("GET", "/files/{}/listen"),
        ("GET", "/files/{}/shares"),
        ("POST", "/files/{}/shares"),
        ("DELETE", "/files/{}/shares/abc"),
        ("GET", "/storage/download/{}/"),
        ("DELETE", "/files/{}"),
    ]
    for method, route in routes:
        theirs = await h.call(
            method, route.format(file_id), json={"current": 1}, headers=auth(bob)
        )
        nothing = await h.call(
            method, route.format("0" * 32), json={"current": 1}, headers=auth(bob)
        )
        assert (method, route, theirs.code) == (method, route, 404), theirs.body
        assert theirs.header("content-type") == "application/problem+json"
        assert theirs.json()["detail"].replace(file_id, "ID") == nothing.json()[
            "detail"
        ].replace("0" * 32, "ID")
    seen = await h.call("GET", f"/files/{file_id}/control", headers=auth(admin))
    assert seen.code == 200
    assert (await present(h, admin, file_id, 2)).code == 200
    assert (await h.call("GET", f"/files/{file_id}", headers=auth(alice))).code == 200


@pytest_twisted.ensureDeferred()
async def test_a_slide_outside_the_deck_is_a_422(tmp_path: Path) -> None:
    """Slides are numbered 1..n: 0 and n+1 are 422 naming the deck's size, a
    number that is not one is 400, and neither moves the listeners."""
    h = harness(tmp_path)
    alice = h.user("alice")
    file_id = await deck(h, alice, slides=4)
    for current in (0, 5, -1, 999):
        refused = await present(h, alice, file_id, current)
        assert refused.code == 422, (current, refused.body)
        assert refused.json()["slides"] == 4
        assert "1..4" in refused.json()["detail"]
    assert (await present(h, alice, file_id, "three")).code == 400
    assert (await present(h, alice, file_id, True)).code == 400
    state = await h.call("GET", f"/files/{file_id}/control", headers=auth(alice))
    assert state.json()["current"] == 1 and state.json()["updated"] is None
    for accepted in (1, 4, "2"):
        assert (await present(h, alice, file_id, accepted)).code == 200
    state = await h.call("GET", f"/files/{file_id}/control", headers=auth(alice))
    assert state.json()["current"] == 2
    # A file without slides has none to move to.
    plain = await h.call(
        "PUT", "/files/notes.txt?renditions=none", data=b"x", headers=auth(alice)
    )
    assert (await present(h, alice, plain.json()["id"], 1)).code == 422


@pytest_twisted.ensureDeferred()
async def test_a_share_link_lets_its_holder_follow_without_an_account(
    tmp_path: Path,
) -> None:
    """The owner makes a share link; with its token alone a listener reads
    the presenter's state, fetches every slide, and hears each move on the
    listen stream; it cannot present, fetch the PDF or follow another deck."""
    h = harness(tmp_path)
    alice = h.user("alice")
    file_id = await deck(h, alice, slides=3)
    other = await deck(h, alice, slides=2)
    made = await h.call("POST", f"/files/{file_id}/shares", headers=auth(alice))
    assert made.code == 201, made.body
    share = made.json()
    token = share["token"]
    assert share["file_id"] == file_id
    assert share["link"].endswith(f"/#/slides/{file_id}/{token}")
    assert local(share["control_url"]) == f"/files/{file_id}/control?share={token}"
    assert local(share["listen_url"]) == f"/files/{file_id}/listen?share={token}"

    state = await h.call("GET", local(share["control_url"]))
    assert state.code == 200, state.body
    assert state.json()["filename"] == "deck.pdf"
    slides = state.json()["slides"]
    assert len(slides) == 3
    for number, url in enumerate(slides, start=1):
        assert f"share={token}" in url
        fetched = await h.call("GET", local(url))
        assert (fetched.code, fetched.body) == (200, b"JPEG %d" % number)

    client: Any = h.client  # StubTreq sets its verbs at runtime
    stream = await pumped(
        h.client, client.get(f"http://uploadd/files/{file_id}/listen?share={token}")
    )
    assert stream.code == 200
    body = stream.content()
    assert (await present(h, alice, file_id, 3)).code == 200
    settle(h)

    # Only the slides, only this deck, and no presenting.
    content = f"/files/{file_id}/content?share={token}"
    assert (await h.call("GET", content)).code == 404
    assert (await h.call("GET", f"/files/{other}/control?share={token}")).code == 404
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await h.call("GET", f"/files/{file_id}/control?share={forged}")).code == (
        404
    )
    assert (await h.call("POST", f"/files/{file_id}/control?share={token}")).code == (
        401
    )

    # Revoking ends the stream, which heard the move first.
    revoked = await h.call(
        "DELETE", f"/files/{file_id}/shares/{share['id']}", headers=auth(alice)
    )
    assert revoked.code == 204
    messages = (await pumped(h.client, body)).decode().split("\n\n")
    events = [m for m in messages if m.startswith("event:")]
    assert [m.split("\n")[0] for m in events] == ["event: control", "event: revoked"]
    assert json.loads(events[0].split("data: ")[1])["current"] == 3


@pytest_twisted.ensureDeferred()
async def test_a_revoked_share_link_stops_working_everywhere(tmp_path: Path) -> None:
    """After the owner deletes a share link its token is a 404 for the
    presenter's state, the slides and the listen stream; other links of the
    same deck still work, and only the owner lists or revokes them."""
    h = harness(tmp_path)
    alice, bob = h.user("alice"), h.user("bob")
    file_id = await deck(h, alice, slides=2)
    first = (
        await h.call("POST", f"/files/{file_id}/shares", headers=auth(alice))
    ).json()
    h.clock.advance(1)
    second = (
        await h.call("POST", f"/files/{file_id}/shares", headers=auth(alice))
    ).json()
    listed = await h.call("GET", f"/files/{file_id}/shares", headers=auth(alice))
    assert [s["id"] for s in listed.json()["results"]] == [first["id"], second["id"]]
    slide = (await h.call("GET", local(first["control_url"]))).json()["slides"][0]
    assert (await h.call("GET", local(slide))).code == 200
    gone = f"/files/{file_id}/shares/{first['id']}"
    assert (await h.call("DELETE", gone, headers=auth(bob))).code == 404
    assert (await h.call("DELETE", gone, headers=auth(alice))).code == 204
    assert (await h.call("DELETE", gone, headers=auth(alice))).code == 404
    for url in (first["control_url"], first["listen_url"], slide):
        assert (await h.call("GET", local(url))).code == 404, url
    assert (await h.call("GET", local(second["control_url"]))).code == 200
    listed = await h.call("GET", f"/files/{file_id}/shares", headers=auth(alice))
    assert [s["id"] for s in listed.json()["results"]] == [second["id"]]
    revoked = [e for e in h.store.events if e.topic == "share.revoked"]
    assert [e.payload for e in revoked] == [
        {"file_id": file_id, "share_id": first["id"]}
    ]


@pytest_twisted.ensureDeferred()
async def test_sharing_needs_a_token_that_may_share(tmp_path: Path) -> None:
    """A read-only token of the owner may follow its own deck but not hand
    out links to it."""
    h = harness(tmp_path)
    alice = h.user("alice")
    file_id = await deck(h, alice, slides=1)
    user = h.store.users["alice"]
    reader = h.parts.tokens.issue(
        Principal(user.id, "alice", frozenset({"read"})), 3600
    )
    control = await h.call("GET", f"/files/{file_id}/control", headers=auth(reader))
    assert control.code == 200
    made = await h.call("POST", f"/files/{file_id}/shares", headers=auth(reader))
    assert made.code == 403


@pytest_twisted.ensureDeferred()
async def test_a_revocation_from_another_process_ends_its_listeners() -> None:
    """A share.revoked event from the bus (another uploadd revoked the link)
    ends this process's streams opened with that link, and no others."""
    hub = LiveHub(Clock())
    ended: list[str | None] = []

    def follower(share_id: str | None) -> Follower:
        return Follower(lambda move: None, lambda: ended.append(share_id), share_id)

    for share_id in ("s1", "s2", None):
        hub.follow("deck", follower(share_id))
    await hub.deliver(
        Event("share.revoked", {"file_id": "deck", "share_id": "s1"}, 1, 0.0)
    )
    assert ended == ["s1"]
    assert [f.share_id for f in hub.followers["deck"]] == ["s2", None]
