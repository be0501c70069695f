"""E-mail the app sent to the local SMTP server of the ``mailbox`` fixture."""

from __future__ import annotations

import re
import threading
from email.message import Message
from typing import Any

from flask.testing import FlaskClient

from tests.support.html import csrf_token
from tests.support.http import path_of


class Mailbox:
    """Messages received by the local SMTP server a test started.

    The app hands mail to a background thread; reading waits until it has been delivered.
    """

    def __init__(self) -> None:
        self.port = 0
        self._received: list[Message] = []
        self._lock = threading.Lock()

    def receive(self, message: Message) -> None:
        with self._lock:
            self._received.append(message)

    @property
    def messages(self) -> list[Message]:
        from modelport.mail import wait_for_delivery

        wait_for_delivery()
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    def links(self, address: str) -> list[str]:
        found = []
        for message in self.to(address):
            body = message.get_payload(decode=True).decode()
            found += re.findall(r"https?://\S+", body)
        return found


def reset_link(client: FlaskClient, mailbox: Any, email: str) -> str:
    """Ask for a reset e-mail; return the path of the link it carries."""
    before = len(mailbox.links(email))
    response = client.post(
        "/auth/reset", data={"email": email, "csrf_token": csrf_token(client, "/auth/reset")}
    )
    assert response.status_code == 302
    links = mailbox.links(email)
    assert len(links) == before + 1, "no reset e-mail arrived"
    return path_of(links[-1])
