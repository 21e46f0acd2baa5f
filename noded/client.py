"""Connecting to a node: AMP over TCP, authenticated with the cluster secret.

The connection writes no log line of its own. Twisted's would be four for
every attempt ("Starting factory", "AMP connection established", "... lost",
"Stopping factory"), and a node that refuses uploadd is tried again at every
ping: the pinger says what matters, once per change (uploadd/cluster/pinger.py).
"""

from __future__ import annotations

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IAddress, IReactorTCP, ITransport
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols import amp
from twisted.python.failure import Failure

from noded.protocol import Authenticate, Hello, proof


class QuietAMP(amp.AMP):
    """AMP without the "connection established/lost" lines."""

    def makeConnection(self, transport: ITransport) -> None:
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None


class _OneQuietConnection(Factory):
    """Builds the one given protocol, without "Starting factory" lines."""

    noisy = False

    def __init__(self, protocol: amp.AMP) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> amp.AMP:
        return self._protocol


async def connect(
    reactor: IReactorTCP, host: str, port: int, secret: bytes, connect_within: float = 5
) -> amp.AMP:
    """An authenticated AMP connection to the node at ``host:port``."""
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=connect_within)
    protocol = QuietAMP()
    await endpoint.connect(_OneQuietConnection(protocol))
    try:
        await authenticate(protocol, secret)
    except BaseException:
        if protocol.transport is not None:
            protocol.transport.loseConnection()
        raise
    return protocol


async def authenticate(protocol: amp.AMP, secret: bytes) -> str:
    """Prove the secret on an open connection; return the node's id."""
    hello = await protocol.callRemote(Hello)
    await protocol.callRemote(Authenticate, proof=proof(secret, hello["nonce"]))
    node_id: str = hello["node_id"]
    return node_id
