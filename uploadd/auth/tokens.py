"""Scopes, the principal a request acts as, and HS256 JWTs that carry them."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable

import attrs
import jwt
from twisted.internet.interfaces import IReactorTime


class Action(enum.Enum):
    CREATE = "create"
    LIST = "list"
    READ = "read"
    DELETE = "delete"
    ADMIN = "admin"
    RENDER = "render"
    SHARE = "share"


#: What each scope grants. ``upload-only`` may create files and nothing else,
#: not even read back its own: the restricted credential handed to browsers.
GRANTS: dict[str, frozenset[Action]] = {
    "admin": frozenset(Action),
    "write": frozenset(
        {Action.CREATE, Action.LIST, Action.READ, Action.DELETE, Action.SHARE}
    ),
    "read": frozenset({Action.LIST, Action.READ}),
    "upload-only": frozenset({Action.CREATE}),
    # Transcode workers: start jobs, report them, send their outputs.
    "worker": frozenset({Action.RENDER}),
}
SCOPES = frozenset(GRANTS)


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; ValueError naming any unknown one."""
    given = frozenset(scopes)
    unknown = given - SCOPES
    if unknown or not given:
        raise ValueError(
            f"unknown scope {', '.join(sorted(unknown)) or '(none)'}; "
            f"scopes are {', '.join(sorted(SCOPES))}"
        )
    return given


@attrs.frozen
class Principal:
    """The user a request acts for and the scopes it holds."""

    user_id: int
    username: str
    scopes: frozenset[str]

    def can(self, action: Action) -> bool:
        return any(action in GRANTS[scope] for scope in self.scopes)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired; str() says which."""


#: Verified tokens remembered at most (then forgotten all at once).
VERIFIED = 4096


@attrs.define
class TokenIssuer:
    """Issues and verifies HS256 JWTs; time comes from the injected clock."""

    _secret: bytes
    _clock: IReactorTime
    issuer: str = "uploadd"
    #: Tokens already verified, with their expiry: a client sending one
    #: request after another (tus chunks) presents the same token each time,
    #: and decoding it cost more than the rest of a small request's head.
    _verified: dict[str, tuple[float, Principal]] = attrs.field(
        factory=dict, init=False
    )

    def issue(self, principal: Principal, ttl: float) -> str:
        now = int(self._clock.seconds())
        claims = {
            "iss": self.issuer,
            "sub": str(principal.user_id),
            "name": principal.username,
            "scope": " ".join(sorted(principal.scopes)),
            "iat": now,
            "exp": now + int(ttl),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            expires, principal = known
            if expires > self._clock.seconds():
                return principal
            del self._verified[token]
        principal, expires = self._decode(token)
        if len(self._verified) >= VERIFIED:
            self._verified.clear()
        self._verified[token] = (expires, principal)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self.issuer,
                options={"require": ["exp", "sub", "scope"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"invalid token: {error}") from None
        # Expiry against the injected clock, not the wall clock, so tests and
        # the server agree on what "now" is.
        # Remembered as compared here: a verified token is refused again
        # exactly when decoding it again would refuse it.
        expires = int(claims["exp"])
        if expires <= self._clock.seconds():
            raise InvalidToken("token expired")
        try:
            principal = Principal(
                user_id=int(claims["sub"]),
                username=str(claims.get("name", "")),
                scopes=check_scopes(str(claims["scope"]).split()),
            )
            return principal, float(expires)
        except ValueError as error:
            raise InvalidToken(f"invalid token: {error}") from None


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <t>`` or ``JWT <t>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    if scheme.lower() in ("bearer", "jwt") and token.strip():
        return token.strip()
    return None
