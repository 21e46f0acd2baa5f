"""Connecting to a node: AMP over TCP, authenticated with the cluster secret."""

from __future__ import annotations

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP
from twisted.protocols import amp

from noded.protocol import Authenticate, Hello, proof


async def connect(
    reactor: IReactorTCP, host: str, port: int, secret: bytes, connect_within: float = 5
) -> amp.AMP:
    """An authenticated AMP connection to the node at ``host:port``."""
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=connect_within)
    protocol: amp.AMP = await connectProtocol(endpoint, amp.AMP())
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
