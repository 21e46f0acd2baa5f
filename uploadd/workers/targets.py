"""Where webhooks (and Web Push messages) may be sent: public addresses
only, unless ``[webhooks] allow_private`` (``[push] allow_private``).

A webhook URL is checked twice. When it is made, an address written in it
(also in decimal or hex, or IPv4-mapped) and the names ``localhost`` and
``*.localhost`` are refused. When it is delivered, its name is resolved and
every address is checked; the connection then goes to a checked address
itself, never through a second lookup, so a name that resolves to a public
address for the check and to a private one for the connection (DNS
rebinding) gets nowhere. Refused: loopback, private (RFC 1918, unique
local, carrier-grade NAT), link-local (cloud metadata at 169.254.169.254),
multicast, unspecified and reserved addresses.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlparse

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from noded.reactor import IReactor

_NUMERIC = re.compile(r"[0-9a-fA-FxX.]+")


class RefusedTarget(Exception):
    """A webhook's address is not a public one; str() says which and why."""


def refusal(text: str) -> str | None:
    """Why no webhook may go to the address ``text`` (``"loopback"``,
    ``"private"``, ...); None for a public address."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal(str(address.ipv4_mapped))
        if address.sixtofour is not None and refusal(str(address.sixtofour)):
            return refusal(str(address.sixtofour))
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def url_refusal(url: str) -> str | None:
    """Why a webhook may not be made for ``url``, judged on the URL alone
    (its name is resolved, and checked again, at each delivery)."""
    host = (urlparse(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine (loopback)"
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        if not _NUMERIC.fullmatch(host):
            return None
        try:
            # 2130706433, 0x7f.1 and 127.1 are 127.0.0.1 to the resolver.
            address = socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    reason = refusal(address)
    return f"{host} is a {reason} address" if reason else None


def resolve(resolver: Any, host: str, port: int) -> Deferred[list[IAddress]]:
    """Every address ``host`` resolves to, through an IHostnameResolver."""
    done: Deferred[list[IAddress]] = Deferred()
    found: list[IAddress] = []

    @implementer(IResolutionReceiver)
    class Receiver:
        def resolutionBegan(self, resolution: IHostResolution) -> None:
            pass

        def addressResolved(self, address: IAddress) -> None:
            found.append(address)

        def resolutionComplete(self) -> None:
            done.callback(found)

    resolver.resolveHostName(Receiver(), host, portNumber=port)
    return done


@implementer(IStreamClientEndpoint)
@attrs.define
class CheckedEndpoint:
    """Resolve once, check every address, connect only to allowed ones."""

    _reactor: IReactor
    _host: str
    _port: int
    _https: bool
    _allow_private: bool
    _timeout: float
    _tls: Any
    #: What is sent, and the setting that allows private addresses, for
    #: the refusal's message.
    _what: str = "webhooks"
    _setting: str = "[webhooks] allow_private"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, factory: IProtocolFactory) -> IProtocol:
        resolved = await resolve(self._reactor.nameResolver, self._host, self._port)
        allowed: list[IPv4Address | IPv6Address] = []
        refused: list[str] = []
        for address in resolved:
            if not isinstance(address, IPv4Address | IPv6Address):
                continue
            reason = None if self._allow_private else refusal(address.host)
            if reason:
                refused.append(f"{address.host}, a {reason} address")
            else:
                allowed.append(address)
        if not allowed and refused:
            raise RefusedTarget(
                f"{self._host} resolves to {'; '.join(refused)}: {self._what} go"
                f" to public addresses only ({self._setting})"
            )
        if not allowed:
            raise DNSLookupError(f"{self._host} does not resolve")
        failed: Exception = ConnectError(string=f"{self._host}: no address")
        for address in allowed:
            endpoint: Any = (
                TCP6ClientEndpoint if isinstance(address, IPv6Address)
                else TCP4ClientEndpoint
            )(self._reactor, address.host, self._port, self._timeout)  # fmt: skip
            if self._https:
                # Certificate and SNI are for the name, not the address.
                creator = self._tls.creatorForNetloc(
                    self._host.encode("idna"), self._port
                )
                endpoint = wrapClientTLS(creator, endpoint)
            try:
                protocol: IProtocol = await endpoint.connect(factory)
                return protocol
            except ConnectError as error:
                failed = error
        raise failed


@implementer(IAgentEndpointFactory)
@attrs.define
class PublicEndpoints:
    """An Agent's endpoints for webhook deliveries and Web Push messages
    (``Agent.usingEndpointFactory``)."""

    _reactor: IReactor
    _allow_private: bool = False
    _timeout: float = 10.0
    _tls: Any = attrs.field(factory=BrowserLikePolicyForHTTPS)
    _what: str = "webhooks"
    _setting: str = "[webhooks] allow_private"

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        return CheckedEndpoint(
            self._reactor,
            uri.host.decode("ascii"),
            uri.port,
            uri.scheme == b"https",
            self._allow_private,
            self._timeout,
            self._tls,
            self._what,
            self._setting,
        )
