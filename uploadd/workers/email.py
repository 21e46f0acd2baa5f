"""Email pushes: a user's events of interest, mailed through SMTP (twisted.mail).

Only when ``[smtp] host`` is set and the user has an address. A refused or
unreachable server fails the handler, so the bus retries it like any push.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import attrs
from twisted.logger import Logger

from noded.reactor import IReactor
from uploadd.events.bus import IEventBus, matches
from uploadd.store.interface import Event, IMetadataStore

log = Logger()

Mailer = Callable[[str, list[str], bytes], Awaitable[Any]]


def smtp_mailer(
    reactor: IReactor, host: str, port: int, username: str, password: str
) -> Mailer:
    """Send with twisted.mail's client on ``reactor``."""

    async def send(sender: str, recipients: list[str], message: bytes) -> Any:
        # Imported here: the module binds the global reactor as a default.
        from twisted.mail.smtp import sendmail

        return await sendmail(
            host,
            sender,
            recipients,
            message,
            port=port,
            reactor=reactor,
            username=username or None,
            password=password or None,
            requireAuthentication=bool(username),
        )

    return send


def compose(sender: str, recipient: str, event: Event) -> bytes:
    payload = event.payload
    name = payload.get("filename") or payload.get("file_id") or ""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"uploadd: {event.topic} {name}".strip()
    message["Message-ID"] = f"<event-{event.id}@uploadd>"
    lines = [f"{event.topic}: {name}", ""]
    lines += [f"{key}: {value}" for key, value in sorted(payload.items())]
    message.set_content("\n".join(lines) + "\n")
    return bytes(message)


@attrs.define
class EmailPusher:
    _store: IMetadataStore
    _send: Mailer
    sender: str
    patterns: tuple[str, ...]

    def attach(self, bus: IEventBus, concurrency: int | None = None) -> None:
        bus.subscribe("push.email", "#", self.handle, concurrency)

    async def handle(self, event: Event) -> None:
        if event.owner_id is None:
            return
        if not any(matches(pattern, event.topic) for pattern in self.patterns):
            return
        user = await self._store.get_user_by_id(event.owner_id)
        if user is None or not user.email:
            return
        await self._send(
            self.sender, [user.email], compose(self.sender, user.email, event)
        )
        log.info("mailed {topic} to {user}", topic=event.topic, user=user.username)
