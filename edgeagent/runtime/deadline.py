"""A total deadline for one remote call: connect, TLS, writes and every read share one budget.

httpx's timeouts are per operation, so a server that sends one byte a second never trips a
read timeout. ``DeadlineBackend`` wraps httpcore's network backend: while a ``Deadline`` is
active (``deadline_scope``), each connect, read and write gets ``min(its timeout, time left)``,
and once no time is left it raises httpcore's timeout before touching the socket. httpx maps
those to ``httpx.ConnectTimeout`` / ``ReadTimeout`` / ``WriteTimeout`` as usual.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import typing
from collections.abc import Iterator
from contextvars import ContextVar

import httpcore
import httpx

from edgeagent.errors import RemoteError

_current: ContextVar[Deadline | None] = ContextVar("edgeagent_remote_deadline", default=None)


class Deadline:
    """A point in monotonic time by which a whole operation must be over."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def bound(self, timeout: float | None, error: type[Exception]) -> float:
        """``min(timeout, time left)``; raises ``error`` when no time is left."""
        left = self.remaining()
        if left <= 0:
            raise error(f"the {self.seconds:g} s deadline passed")
        return left if timeout is None else min(timeout, left)


def current_deadline() -> Deadline | None:
    """The deadline active in this thread (``deadline_scope``), if any."""
    return _current.get()


@contextlib.contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` bound every network operation of ``DeadlineBackend`` in this context."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def _bound(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = _current.get()
    return timeout if deadline is None else deadline.bound(timeout, error)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read and write is cut to the active deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # one write call may loop over partial sends: each gets what is left at its start
        self._stream.write(buffer, _bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bound(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend (``inner``, default ``SyncBackend``) under the active deadline."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bound(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bound(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        deadline = _current.get()
        left = seconds if deadline is None else max(0.0, min(seconds, deadline.remaining()))
        self._inner.sleep(left)


def deadline_transport(proxy: str | None = None) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` (through ``proxy`` if given) whose sockets obey the deadline.

    httpx has no public hook for the network backend, so the transport's connection pool gets
    its backend wrapped; a ``RemoteError`` says so if a future httpx moves it.
    """
    transport = httpx.HTTPTransport(proxy=proxy, trust_env=False)
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        raise RemoteError(
            f"httpx {httpx.__version__} hides its connection pool's network backend, so the "
            "remote call's total deadline cannot be enforced",
            hint="install httpx 0.27 or 0.28 (pip install 'httpx>=0.27,<0.29')",
        )
    pool._network_backend = DeadlineBackend(pool._network_backend)
    return transport
