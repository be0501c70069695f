"""How the product's worker tells that a waiting connection's whole request is in
(``modelport.ops.worker._whole_request_in``): only then may held answers wait for it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from modelport.ops.worker import _PEEK_BYTES, _whole_request_in

BODY = b'{"inputs": {"sepal_length": 5.1}}'
HEAD = (
    b"POST /api/v1/models/iris/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
    b"Content-Type: application/json\r\nCONTENT-length: %d\r\n\r\n" % len(BODY)
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    yield client, server
    client.close()
    server.close()


@pytest.mark.parametrize(
    ("sent", "whole"),
    [
        (b"", False),  # nothing yet
        (HEAD[:20], False),  # the request line
        (HEAD[:-2], False),  # the head without its blank line
        (HEAD, False),  # the head, no body yet
        (HEAD + BODY[:-1], False),  # all but the body's last byte
        (HEAD + BODY, True),
        (HEAD + BODY + b"GET / HTTP/1.1\r\n", True),  # pipelined: this request is in
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", True),  # no body
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
        (b"POST / HTTP/1.1\r\nContent-Length: x1\r\n\r\n", True),  # refused at once
    ],
)
def test_the_whole_request_is_in_only_once_its_last_byte_is(
    pair: tuple[socket.socket, socket.socket], sent: bytes, whole: bool
) -> None:
    client, server = pair
    if sent:
        client.sendall(sent)
    buffer = bytearray(_PEEK_BYTES)
    assert _whole_request_in(server, buffer) is whole
    assert _whole_request_in(server, buffer) is whole  # peeking consumes nothing


def test_a_closed_connection_counts_as_in(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    client.close()
    assert _whole_request_in(server, bytearray(_PEEK_BYTES)) is True
