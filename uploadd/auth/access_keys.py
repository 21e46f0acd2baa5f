"""Access keys: how a program signs requests as a user (AWS Signature
Version 4, on the S3 listener).

A key is an id (``UPLD`` and 16 capitals or digits: 20 characters, as
AWS's) and a 40-character secret, limited to one scope (write, read or
upload-only) that its user holds. Signature Version 4 needs the secret
itself on the server, which signs each request again to compare, so it
cannot be hashed as a password is: it is sealed with AES-256-GCM under a
key derived by HKDF-SHA256 from the server's ``[auth] secret``, bound to
the key's id and user. The database alone reveals no secret; a database
taken to a server with another secret unseals none; a sealed secret copied
to another key's row opens nowhere. The secret is shown once, when the key
is made; a revoked key stays listed and signs nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import string

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.auth.tokens import GRANTS, Action, Principal
from uploadd.errors import Forbidden, Invalid, NotFound
from uploadd.store.buckets import AccessKeyRecord
from uploadd.store.interface import Conflict, IMetadataStore, User

log = Logger()

#: What every key id starts with (AWS's start with AKIA).
KEY_PREFIX = "UPLD"
KEY_ID_LENGTH = 20
SECRET_LENGTH = 40
#: The scopes a key may be limited to.
KEY_SCOPES = ("write", "read", "upload-only")
#: What the HKDF derivation is for: a key of its own, never the token key.
_PURPOSE = b"uploadd access key secrets v1"
_SEALED = "v1."
_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


def new_key_id() -> str:
    return KEY_PREFIX + "".join(
        secrets.choice(_ID_ALPHABET) for _ in range(KEY_ID_LENGTH - len(KEY_PREFIX))
    )


def new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


@attrs.frozen
class Sealer:
    """Seals and unseals access key secrets with AES-256-GCM under a key
    derived from the server's secret; each sealed secret is bound (as
    associated data) to its key id and user."""

    _key: bytes = attrs.field(repr=False)

    @classmethod
    def from_server_secret(cls, server_secret: bytes) -> Sealer:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE
        ).derive(server_secret)
        return cls(derived)

    @staticmethod
    def _bound(key_id: str, user_id: int) -> bytes:
        return f"{key_id}\n{user_id}".encode()

    def seal(self, key_id: str, user_id: int, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self._key).encrypt(
            nonce, secret.encode("utf-8"), self._bound(key_id, user_id)
        )
        return _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, key_id: str, user_id: int, sealed: str) -> str | None:
        """The secret, or None when it was not sealed here for this key id
        and user (another server secret, a row tampered with)."""
        if not sealed.startswith(_SEALED):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_SEALED) :])
            opened = AESGCM(self._key).decrypt(
                raw[:12], raw[12:], self._bound(key_id, user_id)
            )
            return opened.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            return None


@attrs.frozen
class AccessKey:
    """An access key in use: its secret, the user it signs for and the
    scope it is limited to."""

    key_id: str
    secret: str = attrs.field(repr=False)
    user: User
    scope: str

    @property
    def principal(self) -> Principal:
        """Who a request signed with this key acts as."""
        return Principal(self.user.id, self.user.username, frozenset({self.scope}))


def grants(scopes: frozenset[str]) -> frozenset[Action]:
    """Everything ``scopes`` together allow."""
    return frozenset(action for scope in scopes for action in GRANTS[scope])


@attrs.define
class AccessKeys:
    """Makes, lists, revokes and opens access keys."""

    _store: IMetadataStore
    _sealer: Sealer
    _clock: IReactorTime

    @classmethod
    def with_secret(
        cls, store: IMetadataStore, server_secret: bytes, clock: IReactorTime
    ) -> AccessKeys:
        """Access keys sealed under ``server_secret`` (``[auth] secret``)."""
        return cls(store, Sealer.from_server_secret(server_secret), clock)

    async def create(
        self, user: User, scope: str = "write"
    ) -> tuple[AccessKeyRecord, str]:
        """A new key of ``user`` limited to ``scope`` (Invalid unless one of
        :data:`KEY_SCOPES`; Forbidden beyond what the user holds); the
        record kept and the secret, which nothing shows again."""
        if scope not in KEY_SCOPES:
            raise Invalid(
                f"a key's scope is one of {', '.join(KEY_SCOPES)}, not {scope!r}"
            )
        if not GRANTS[scope] <= grants(user.scopes):
            raise Forbidden(
                f"{user.username} holds only {' '.join(sorted(user.scopes))}: "
                f"no {scope} key for them"
            )
        secret = new_secret()
        for _ in range(5):
            key_id = new_key_id()
            record = AccessKeyRecord(
                key_id,
                user.id,
                scope,
                self._sealer.seal(key_id, user.id, secret),
                self._clock.seconds(),
            )
            try:
                await self._store.add_access_key(record)
            except Conflict:
                if await self._store.get_user_by_id(user.id) is None:
                    raise NotFound(f"no user {user.username!r}") from None
                continue  # an id taken already: draw another
            log.info(
                "access key {key_id} ({scope}) made for {user}",
                key_id=key_id,
                scope=scope,
                user=user.username,
            )
            return record, secret
        raise AssertionError("five access key ids in a row were taken")

    async def secret_of(self, key_id: str) -> AccessKey | None:
        """The key ``key_id`` with its secret, user and scope, for checking
        a signature; None when it is unknown or revoked, its user is gone
        or no longer holds its scope, or its secret was not sealed by this
        server."""
        record = await self._store.get_access_key(key_id)
        if record is None or record.revoked_at is not None:
            return None
        user = await self._store.get_user_by_id(record.user_id)
        if user is None or not GRANTS[record.scope] <= grants(user.scopes):
            return None
        secret = self._sealer.unseal(record.key_id, record.user_id, record.sealed)
        if secret is None:
            log.warn(
                "access key {key_id} was sealed under another server secret",
                key_id=key_id,
            )
            return None
        return AccessKey(record.key_id, secret, user, record.scope)

    async def keys_of(self, user: User | None = None) -> list[AccessKeyRecord]:
        """One user's keys (None: everyone's), oldest first, revoked ones
        too; never their secrets."""
        return await self._store.access_keys_of(None if user is None else user.id)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key from now on; False if it is unknown or was revoked."""
        revoked = await self._store.revoke_access_key(key_id, self._clock.seconds())
        if revoked:
            log.info("access key {key_id} revoked", key_id=key_id)
        return revoked
