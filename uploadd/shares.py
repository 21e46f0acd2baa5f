"""Share links: revocable viewer tokens, each naming one file.

A deck's owner makes one for the people who should follow a presentation;
its token lets them read the presenter's state, listen for moves and fetch
the slides, and nothing else. A token is ``<share id>.<mac>``: the MAC is an
HMAC-SHA256 of the share and file ids under a key derived from the token
secret, so the database holds nothing that works as a credential, and a
token is good exactly while its share is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import attrs
from twisted.internet.interfaces import IReactorTime

from uploadd.renditions import SLIDES
from uploadd.store.interface import FileRecord, IMetadataStore, Share


def share_key(secret: bytes) -> bytes:
    """The MAC key of share tokens, derived from the token secret so the two
    never sign the same thing."""
    return hmac.new(secret, b"uploadd share links", hashlib.sha256).digest()


@attrs.define
class ShareLinks:
    """Makes, reads and checks share links."""

    _store: IMetadataStore
    _key: bytes
    _clock: IReactorTime

    async def create(self, record: FileRecord) -> Share:
        share = Share(secrets.token_hex(8), record.id, self._clock.seconds())
        await self._store.add_share(share)
        return share

    def token(self, share: Share) -> str:
        message = f"{share.id}:{share.file_id}".encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return f"{share.id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    async def check(self, token: str, file_id: str) -> Share | None:
        """The share ``token`` belongs to, if it is still recorded and names
        ``file_id``; else None."""
        share_id, dot, _ = token.partition(".")
        if not dot or not share_id.isalnum() or len(token) > 128:
            return None
        share = await self._store.get_share(share_id)
        if share is None or share.file_id != file_id:
            return None
        if not hmac.compare_digest(self.token(share), token):
            return None
        return share

    async def check_slide(self, token: str, record: FileRecord) -> Share | None:
        """The share ``token`` belongs to, if ``record`` is one of the slides
        of the file it names; else None."""
        if record.rendition_of is None:
            return None
        share = await self.check(token, record.rendition_of)
        if share is None:
            return None
        deck = await self._store.get_rendition(record.rendition_of, SLIDES)
        return share if deck is not None and record.id in deck.outputs else None
