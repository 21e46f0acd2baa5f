"""Webhooks go to public addresses only: checked on the URL when a webhook
is made, and on the resolved address, which is the one connected to, when
it is delivered."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from zope.interface import implementer

from tests.support import FakeReactor, auth, harness
from uploadd.workers.targets import RefusedTarget, refusal
from uploadd.workers.webhooks import treq_poster

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.9.9.9:8080/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "http://localhost:8000/hook",
    "http://api.localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.1.2.3]/hook",
    "http://10.0.0.8/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[fe80::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://0.0.0.0/hook",
    "https://[::]/hook",
    "http://[2002:7f00:1::1]/hook",
]


@pytest_twisted.ensureDeferred()
async def test_webhooks_to_non_public_addresses_are_refused_when_made(
    tmp_path: Path,
) -> None:
    """Loopback, private, link-local, multicast and unspecified targets,
    written in any form, are a 422 problem naming the host; a public
    address or a name is taken; [webhooks] allow_private takes them all."""
    app = harness(tmp_path)
    token = app.user("alice")
    for url in REFUSED:
        reply = await app.call(
            "POST", "/webhooks", json={"url": url}, headers=auth(token)
        )
        assert reply.code == 422, (url, reply.body)
        assert reply.header("content-type") == "application/problem+json"
        assert "public addresses only" in reply.json()["detail"]
    for url in ("http://93.184.215.14/hook", "https://hooks.example.com/in"):
        reply = await app.call(
            "POST", "/webhooks", json={"url": url}, headers=auth(token)
        )
        assert reply.code == 201, (url, reply.body)
    assert (
        await app.call(
            "POST", "/webhooks", json={"url": "http://[::1/x"}, headers=auth(token)
        )
    ).code == 400

    private = harness(
        tmp_path / "private", settings={("webhooks", "allow_private"): "true"}
    )
    token = private.user("alice")
    for url in REFUSED:
        reply = await private.call(
            "POST", "/webhooks", json={"url": url}, headers=auth(token)
        )
        assert reply.code == 201, (url, reply.body)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("::ffff:192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("100.64.1.1", "reserved"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("239.1.2.3", "multicast"),
        ("ff05::2", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("64:ff9b::7f00:1", "reserved"),
        ("2002:a00:1::1", "private"),
        ("93.184.215.14", None),
        ("::ffff:93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_addresses_are_judged_public_or_not(address: str, reason: str | None) -> None:
    """Each address is refused for the reason it is not public, IPv4-mapped
    and 6to4 addresses by the IPv4 address inside."""
    assert refusal(address) == reason


@implementer(IHostnameResolver)
@attrs.define
class Resolver:
    """Answers each lookup of a name with the next of its answers."""

    answers: dict[str, list[list[str]]]
    asked: list[str] = attrs.field(factory=list)

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        self.asked.append(hostName)
        resolutionReceiver.resolutionBegan(None)  # type: ignore[arg-type]
        for ip in self.answers[hostName].pop(0):
            made = IPv6Address if ":" in ip else IPv4Address
            resolutionReceiver.addressResolved(made("TCP", ip, portNumber))
        resolutionReceiver.resolutionComplete()
        return None


def started(pending: Awaitable[int]) -> Deferred[int]:
    """Run a delivery until it waits (here: for a connection that is never
    made)."""

    async def wait() -> int:
        return await pending

    return Deferred.fromCoroutine(wait())


def reactor_with(answers: dict[str, list[list[str]]]) -> FakeReactor:
    reactor = FakeReactor()
    reactor.nameResolver = Resolver(answers)
    return reactor


@pytest_twisted.ensureDeferred()
async def test_a_delivery_connects_to_the_address_it_checked_and_no_other() -> None:
    """A name is resolved once per delivery and the connection goes to the
    very address that passed the check (HTTP and HTTPS alike); when the
    name later resolves to a private address (DNS rebinding) the delivery
    is refused and nothing is connected to."""
    reactor = reactor_with(
        {
            "hooks.example": [["93.184.215.14"], ["127.0.0.1"]],
            "secure.example": [["10.0.0.1", "2606:4700:4700::1111"]],
        }
    )
    post = treq_poster(reactor)
    started(post("http://hooks.example:8080/in", b"{}", {}))
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [
        ("93.184.215.14", 8080)
    ]
    with pytest.raises(RefusedTarget, match=r"127\.0\.0\.1, a loopback address"):
        await post("http://hooks.example:8080/in", b"{}", {})
    assert len(reactor.tcpClients) == 1
    started(post("https://secure.example/in", b"{}", {}))
    assert [(host, port) for host, port, *_ in reactor.tcpClients[1:]] == [
        ("2606:4700:4700::1111", 443)
    ]
    assert reactor.nameResolver.asked == [  # type: ignore[attr-defined]
        "hooks.example",
        "hooks.example",
        "secure.example",
    ]


@pytest_twisted.ensureDeferred()
async def test_a_delivery_to_a_literal_private_address_is_refused_unless_allowed() -> (
    None
):
    """A webhook made while private targets were allowed is refused at
    delivery once they are not; with allow_private it is delivered."""
    refused = reactor_with({"10.0.0.5": [["10.0.0.5"]]})
    with pytest.raises(RefusedTarget, match="private"):
        await treq_poster(refused)("http://10.0.0.5/in", b"{}", {})
    assert refused.tcpClients == []
    allowed = reactor_with({"10.0.0.5": [["10.0.0.5"]]})
    post = treq_poster(allowed, allow_private=True)
    started(post("http://10.0.0.5/in", b"{}", {}))
    assert [(h, p) for h, p, *_ in allowed.tcpClients] == [("10.0.0.5", 80)]
