"""gunicorn's sync worker, answering the small predictions waiting for it as a group.

A sync worker answers one connection after another: accept, read the request, call the
application, send the answer, close. When a prediction's record must be durable before its
answer leaves, the worker also waits, idle, for one commit per request: on PostgreSQL, one
WAL flush each.

This worker does the same, except with requests the predict hot path takes
(``modelport.api.fastpath.may_answer``: a token, a small JSON body). Their answers are
held, not sent, while the worker accepts the next connection that is already waiting (it
never waits for one) and has its whole request in (head and body, peeked at without
reading), up to ``MODELPORT_WORKER_GROUP``. Each held answer's record waits in one
``RecordGroup``, handed to the hot path in the environ (``fastpath.GROUP``). Then the
answers go out in order, and the first one commits the group's records as one
transaction: one commit and one flush for the group, and the worker's work done in one
stretch.

An answer still leaves only once its record is durable, and a lone request is a group of
one. Nothing else waits: a connection whose request is not all in yet (a client still
sending, or silent), and a request the hot path does not take, have the held answers sent
first, and are then answered as the sync worker answers them. ``MODELPORT_WORKER_GROUP=1``
makes it the sync worker.

One more change, for a server without a buffering proxy in front (``modelport serve`` on
a laptop; production runs behind ``deploy/nginx``): a connection must deliver its whole
request head within ``MODELPORT_REQUEST_HEAD_TIMEOUT`` seconds of the worker taking it, or
it is closed. The sync worker would wait for it as long as the client likes (until the
master kills the worker), so two silent sockets stopped a two-worker server. It is a
deadline, not a timeout per read: a client sending a byte a second gets no more time. The
body is read as before.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import ssl
import sys
import time
from collections.abc import Generator
from datetime import datetime
from typing import Any

from gunicorn import http, sock, util
from gunicorn.http import wsgi
from gunicorn.workers.sync import StopWaiting, SyncWorker

_AGAIN = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)


def group_size() -> int:
    """``MODELPORT_WORKER_GROUP``: the most answers held for one commit (1: plain sync)."""
    value = os.environ.get("MODELPORT_WORKER_GROUP", "8").strip()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"MODELPORT_WORKER_GROUP must be a whole number from 1, not {value!r}")
    return int(value)


def head_timeout() -> float:
    """``MODELPORT_REQUEST_HEAD_TIMEOUT``: seconds a connection has to send its request head."""
    value = os.environ.get("MODELPORT_REQUEST_HEAD_TIMEOUT", "5").strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < 3600:  # as modelport.config checks the setting
        raise ValueError(
            f"MODELPORT_REQUEST_HEAD_TIMEOUT must be a number of seconds above 0, not {value!r}"
        )
    return seconds


# What a waiting connection may have sent for its whole request to count as in: a head of
# up to gunicorn's limits and a hot-path body (modelport.api.fastpath.FAST_BODY_LIMIT).
_HEAD_BYTES = 16 * 1024
_PEEK_BYTES = _HEAD_BYTES + 64 * 1024


def _whole_request_in(client: socket.socket, buffer: bytearray) -> bool:
    """Whether the client's whole request, head and ``Content-Length`` body, is waiting in
    the socket already (or the client closed it): reading it cannot wait for the client."""
    try:
        size = client.recv_into(buffer, len(buffer), socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False  # nothing sent yet
    except OSError:
        return True  # reading it will tell at once (a reset, say)
    if size == 0:
        return True  # closed: reading it ends at once
    # One lower-cased copy of the head and two searches: this runs for every held answer.
    head = bytes(memoryview(buffer)[: min(size, _HEAD_BYTES)]).lower()
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return False  # a head still coming in
    head = head[: end + 2]
    if b"\r\ntransfer-encoding:" in head:
        return False  # a chunked body: its end cannot be told from here
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        return size >= end + 4  # no body
    value = head[start + 17 : head.index(b"\r\n", start + 2)].strip()
    if not value.isdigit():
        return True  # the parser refuses it at once
    return size >= end + 4 + int(value)


class _Closing(Exception):
    """The connection ends without (more of) an answer: where SyncWorker raises
    StopIteration, which a generator may not."""


class _HeadTimeout(_Closing):
    """The request head did not arrive in time."""


class _HeadDeadline:
    """The client socket as the request parser reads it: until the head is in, a read waits
    only for what is left of the deadline."""

    def __init__(self, client: Any, seconds: float) -> None:
        self.client = client
        self.seconds = seconds
        self.deadline: float | None = time.monotonic() + seconds

    def recv(self, size: int) -> bytes:
        if self.deadline is None:
            return self.client.recv(size)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _HeadTimeout(f"no complete request head within {self.seconds:g} s")
        self.client.settimeout(left)
        try:
            return self.client.recv(size)
        except TimeoutError:
            raise _HeadTimeout(f"no complete request head within {self.seconds:g} s") from None

    def head_read(self) -> None:
        """The body, and the answer, wait as the sync worker waits: blocking."""
        self.deadline = None
        self.client.settimeout(None)


class GroupWorker(SyncWorker):
    """See the module's docstring."""

    def init_process(self) -> None:
        self.head_seconds = head_timeout()
        super().init_process()

    def run_for_one(self, timeout: float) -> None:
        # Imported here, in the worker: gunicorn's config imports this module before the
        # master loads the application (MODELPORT_PRELOAD), or when it does not load it at all.
        from modelport.api import fastpath
        from modelport.ops import flusher
        from modelport.serving import variants
        from modelport.serving.records import RecordGroup

        self.may_answer = fastpath.may_answer
        self.group_key = fastpath.GROUP
        self.new_group = RecordGroup
        self.peek_buffer = bytearray(_PEEK_BYTES)
        listener = self.sockets[0]
        size = group_size()
        # Shadow runs, and writing out metrics and request log lines, are done here, between
        # requests (see serving.variants, ops.flusher): a thread would hold the interpreter
        # while a request waits for it.
        variants.run_in_worker_loop()
        flusher.run_in_worker_loop()
        # An idle worker still writes out what it noted within the flusher's interval.
        idle_wait = min(timeout, flusher.INTERVAL)
        while self.alive:
            self.notify()
            try:
                client = self._accept(listener)
                self.handle_group(listener, client, size)
                # Busy without a pause: catch up before the queue fills and runs are lost.
                if variants.backlog() >= variants.BATCH:
                    variants.run_queued()
                flusher.flush_if_due()
                continue  # as SyncWorker: no select() while connections are waiting
            except OSError as e:
                if e.errno not in _AGAIN:
                    raise
            flusher.flush_if_due()
            if variants.backlog():
                # Shadow runs wait for a pause (no request for PAUSE_SECONDS) or a batch:
                # meanwhile this worker takes requests as they come, and while it runs them an
                # idle worker takes what arrives.
                try:
                    waiting = self.wait(variants.PAUSE_SECONDS)
                except StopWaiting:
                    return
                if not waiting or variants.backlog() >= variants.BATCH:
                    variants.run_queued()
                continue
            if not self.is_parent_alive():
                return
            try:
                self.wait(idle_wait)
            except StopWaiting:
                return

    @staticmethod
    def _accept(listener: Any) -> tuple[Any, Any]:
        client, addr = listener.accept()
        client.setblocking(1)
        util.close_on_exec(client)
        return client, addr

    def handle_group(self, listener: Any, first: tuple[Any, Any], size: int) -> None:
        """Answer ``first``, and the waiting connections its answer can wait for."""
        held: list[Generator] = []  # answers not sent yet (their records in ``group``)
        group = self.new_group()
        client: tuple[Any, Any] | None = first
        while client is not None:
            handling = self.handle_in_steps(listener, *client)
            environ = next(handling, None)  # the request is read, the application not called
            if environ is not None:
                small = self.may_answer(environ)
                if held and not small:
                    self._send(held)  # its answer may take long: nobody waits behind it
                    group = self.new_group()
                if small:
                    environ[self.group_key] = group  # its record commits with the others
                if next(handling, None) is not None:
                    if small:
                        held.append(handling)
                    else:
                        self._send([handling])
            client = None
            # Not once the worker is to stop (SIGTERM, max_requests): it sends what it holds.
            if held and len(held) < size and self.alive:
                try:
                    client = self._accept(listener)
                except OSError as e:
                    if e.errno not in _AGAIN:
                        self._send(held)
                        raise
                    break
                if self.cfg.is_ssl or not _whole_request_in(client[0], self.peek_buffer):
                    # Its request is not all here yet (or cannot be told, under TLS): the
                    # held answers leave before the worker waits for it.
                    self._send(held)
                    group = self.new_group()
        self._send(held)

    def _send(self, held: list[Generator]) -> None:
        for handling in held:
            self.notify()
            for _ in handling:
                pass
        held.clear()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        for _ in self.handle_in_steps(listener, client, addr):
            pass

    # SyncWorker.handle and handle_request (gunicorn 27) as one generator, which pauses
    # twice: once the request is read (yielding its environ), and once the application has
    # returned its answer, before the first byte of it is sent. tests/test_upstream.py holds
    # hashes of the upstream methods this class follows (and of run_for_one and accept).

    def handle_in_steps(self, listener: Any, client: Any, addr: Any) -> Generator:
        req = None
        try:
            if self.cfg.is_ssl:
                client = sock.ssl_wrap_socket(client, self.cfg)
            reading = _HeadDeadline(client, self.head_seconds)
            parser = http.get_parser(self.cfg, reading, addr)
            try:
                req = next(parser)
            except StopIteration as e:
                raise _Closing(str(e)) from None
            reading.head_read()
            yield from self.handle_request_in_steps(listener, req, client, addr)
        except http.errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except _HeadTimeout as e:
            self.log.debug("Closing connection. %s", e)
            # Nothing was answered: no lingering for the client's own close (close_graceful).
            client.close()
        except _Closing as e:
            self.log.debug("Closing connection. %s", e)
        except ssl.SSLError as e:
            if e.args[0] == ssl.SSL_ERROR_EOF:
                self.log.debug("ssl connection closed")
                client.close()
            else:
                self.log.debug("Error processing SSL request.")
                self.handle_error(req, client, addr, e)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
            else:
                self.log.debug("Ignoring %s", errno.errorcode.get(e.errno, e.errno))
        except BaseException as e:
            self.handle_error(req, client, addr, e)
        finally:
            util.close_graceful(client)

    def handle_request_in_steps(self, listener: Any, req: Any, client: Any, addr: Any) -> Generator:
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = wsgi.create(req, client, addr, listener.getsockname(), self.cfg)
            resp.force_close()
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            yield environ
            respiter = self.wsgi(environ, resp.start_response)
            try:
                yield True
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                request_time = datetime.now() - request_start
                self.log.access(resp, req, environ, request_time)
                if hasattr(respiter, "close"):
                    respiter.close()
        except OSError:
            util.reraise(*sys.exc_info())
        except (Exception, SystemExit):
            if resp and resp.headers_sent:
                # A timeout's abort is SystemExit: past the headers, a 500 would corrupt it.
                self.log.exception("Error handling request")
                util.close_graceful(client)
                raise _Closing from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
