"""Email pushes from the real daemon to a local SMTP receiver."""

from __future__ import annotations

import email
import io
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon import ctl, start

pytestmark = pytest.mark.integration


class SmtpReceiver:
    """Just enough SMTP to take messages on loopback, for the test."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.messages: list[tuple[list[str], bytes]] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                self.session(connection.makefile("rwb"))

    def session(self, stream: io.BufferedRWPair) -> None:
        def say(line: str) -> None:
            stream.write(line.encode() + b"\r\n")
            stream.flush()

        say("220 test ESMTP")
        recipients: list[str] = []
        while line := stream.readline():
            command = line.decode().strip().upper()
            if command.startswith(("EHLO", "HELO")):
                say("250 test")
            elif command.startswith("MAIL FROM"):
                say("250 ok")
            elif command.startswith("RCPT TO"):
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                say("250 ok")
            elif command == "DATA":
                say("354 go ahead")
                body = b""
                while (chunk := stream.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.messages.append((recipients, body))
                recipients = []
                say("250 queued")
            elif command == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.listener.close()


def test_a_stored_file_is_mailed_to_its_owner(tmp_path: Path) -> None:
    """With [smtp] host set, file.stored is mailed to the user's address."""
    receiver = SmtpReceiver()
    daemon = start(
        tmp_path / "uploadd", "--smtp-host=127.0.0.1", f"--smtp-port={receiver.port}"
    )
    try:
        ctl(daemon.data_dir, "user", "email", "alice", "alice@example.test")
        status, _, _ = daemon.request("PUT", "/files/song.mp3", b"ID3")
        assert status == 201
        deadline = time.monotonic() + 15
        while not receiver.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        ((recipients, body),) = receiver.messages
        assert recipients == ["alice@example.test"]
        message = email.message_from_bytes(body)
        assert message["Subject"] == "uploadd: file.stored song.mp3"
        assert message["To"] == "alice@example.test"
    finally:
        daemon.stop()
        receiver.close()
