"""``POST /auth/token``: a username and password for a bearer token."""

from __future__ import annotations

import base64

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from noded.threads import Runner
from uploadd.api import problems
from uploadd.api.http import json_body, read_fields
from uploadd.auth.passwords import verify_password
from uploadd.auth.throttle import Refusal, SignInThrottle
from uploadd.auth.tokens import Principal, TokenIssuer, check_scopes
from uploadd.store.interface import IMetadataStore

# A hash that never matches, checked when the user does not exist, so a wrong
# name costs the same time as a wrong password.
_ZEROS = base64.b64encode(bytes(32)).decode()
_NO_USER = f"scrypt$16384$8$1${_ZEROS}${_ZEROS}"


@attrs.define(slots=False)
class AuthAPI:
    app = Klein()
    problems.install(app)

    _store: IMetadataStore
    _tokens: TokenIssuer
    _run: Runner
    _token_ttl: float
    _throttle: SignInThrottle

    @app.route("/auth/token", methods=["POST"])
    @app.route("/api-token-auth/", methods=["POST"])
    async def token(self, request: IRequest) -> bytes:
        fields = read_fields(request)
        username = str(fields.get("username") or "")
        password = str(fields.get("password") or "")
        if not username or not password:
            raise problems.bad_request("send a username and a password")
        attempt = self._throttle.admit(username, request.getClientAddress().host)
        if isinstance(attempt, Refusal):
            raise problems.Problem(
                429,
                attempt.detail,
                title="Too Many Requests",
                headers={"Retry-After": str(attempt.retry_after)},
                extra={"retry_after": attempt.retry_after},
            )
        user = await self._store.get_user(username)
        matches = await self._run(
            verify_password, password, user.password_hash if user else _NO_USER
        )
        if user is None or not matches:
            self._throttle.failed(attempt)
            raise problems.unauthorized("wrong username or password")
        self._throttle.forgive(attempt)
        scopes = user.scopes
        if fields.get("scope"):
            try:
                wanted = check_scopes(str(fields["scope"]).split())
            except ValueError as error:
                raise problems.bad_request(str(error)) from None
            if not wanted <= scopes:
                raise problems.forbidden(
                    f"{username} holds only: {' '.join(sorted(scopes))}"
                )
            scopes = wanted
        ttl = self._token_ttl
        if fields.get("expires_in"):
            try:
                ttl = min(ttl, max(1.0, float(fields["expires_in"])))
            except (TypeError, ValueError):
                raise problems.bad_request(
                    "expires_in must be a number of seconds"
                ) from None
        principal = Principal(user.id, user.username, scopes)
        return json_body(
            request,
            200,
            {
                "token": self._tokens.issue(principal, ttl),
                "token_type": "Bearer",
                "expires_in": int(ttl),
                "scope": " ".join(sorted(scopes)),
            },
        )
