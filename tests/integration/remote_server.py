"""Servers on loopback for the remote tests: canned HTTP handlers and a real llama_cpp.server."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

# handler(request_state) -> (status, headers, body bytes); may sleep.
Responder = Callable[["Seen"], tuple[int, dict[str, str], bytes]]


@dataclass
class Seen:
    """What a canned server received: one entry per request."""

    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # raw_server: bytes written, per ended reply
    finished: list[bool] = field(default_factory=list)  # raw_server: was the whole reply written?
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.paths)

    def wait_ended(self, n: int = 1, timeout_s: float = 30.0) -> bool:
        """Wait until ``n`` raw_server replies have ended (written whole or cut off)."""
        stop = time.monotonic() + timeout_s
        while time.monotonic() < stop:
            with self.lock:
                if len(self.finished) >= n:
                    return True
            time.sleep(0.02)
        return False


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/v1"


def json_body(obj: object, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    """A JSON response triple."""
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def chat_completion(message: dict, usage: tuple[int, int] = (12, 5)) -> dict:
    """A minimal OpenAI chat completion body around ``message``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "canned",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
    }


@contextlib.contextmanager
def _serving(server) -> Iterator[str]:
    """Run ``server`` in a daemon thread; yield its base URL (ending in /v1); shut it down."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def canned_server(responder: Responder) -> Iterator[tuple[str, Seen]]:
    """Serve ``responder`` on a loopback port; yield (base URL ending in /v1, Seen)."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            with seen.lock:
                seen.paths.append(self.path)
                seen.headers.append(dict(self.headers.items()))
                seen.bodies.append(body)
                seen.raw.append(raw)
            status, headers, payload = responder(seen)
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with _serving(server) as url:
        yield url, seen


class RawReply:
    """The socket of one request on ``raw_server``: write bytes whole or one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = 0

    def send(self, data: bytes) -> bool:
        """Write ``data``; False once the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def drip(self, data: bytes, every_s: float = 1.0, max_s: float = 30.0) -> bool:
        """Write ``data`` one byte per ``every_s`` seconds (for at most ``max_s``); True if all."""
        stop = time.monotonic() + max_s
        for i in range(len(data)):
            if time.monotonic() > stop or not self.send(data[i : i + 1]):
                return False
            time.sleep(every_s)
        return True

    def stream(self, chunks: Iterator[bytes]) -> bool:
        """Write every chunk; False as soon as one cannot be written."""
        return all(self.send(chunk) for chunk in chunks)


# script(seen, reply) writes the whole HTTP response itself and returns True if it wrote it all.
RawScript = Callable[[Seen, RawReply], bool]


def http_head(status: int = 200, length: int | None = None, **headers: str) -> bytes:
    """A status line and headers (``Content-Length`` when ``length`` is given), then CRLF CRLF."""
    lines = [f"HTTP/1.1 {status} OK", "Content-Type: application/json", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_request(sock: socket.socket) -> tuple[str, dict[str, str], bytes] | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return path, headers, body


@contextlib.contextmanager
def raw_server(script: RawScript) -> Iterator[tuple[str, Seen]]:
    """A hostile loopback server: ``script`` writes raw bytes (drip, flood, truncate, ...)."""
    seen = Seen()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(60)
            try:
                request = _read_request(self.request)
            except OSError:
                return
            if request is None:
                return
            path, headers, raw = request
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            reply = RawReply(self.request)
            with seen.lock:
                seen.paths.append(path)
                seen.headers.append(headers)
                seen.bodies.append(body)
                seen.raw.append(raw)
            finished = False
            try:
                finished = script(seen, reply)
            finally:
                with seen.lock:
                    seen.sent.append(reply.sent)
                    seen.finished.append(bool(finished))

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    with _serving(server) as url:
        yield url, seen


def drip_script(body: bytes, *, head: bool = True, every_s: float = 1.0, max_s: float = 20.0):
    """Reply ``body`` one byte per ``every_s``: the headers too when ``head``, else only the body."""

    def script(seen: Seen, reply: RawReply) -> bool:
        data = http_head(200, len(body)) + body
        if head:
            return reply.drip(data, every_s, max_s)
        return reply.send(data[: -len(body)]) and reply.drip(body, every_s, max_s)

    return script


def flood_script(total_bytes: int, *, declare_length: bool = True, chunk: int = 1 << 16):
    """A chat completion whose content is ``total_bytes`` of 'x', streamed in chunks.

    With ``declare_length`` the size is announced in Content-Length, else the body simply runs
    until the connection closes.
    """
    prefix = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
    suffix = b'"},"finish_reason":"stop"}]}'
    filler = total_bytes - len(prefix) - len(suffix)

    def chunks() -> Iterator[bytes]:
        yield prefix
        left = filler
        block = b"x" * chunk
        while left > 0:
            yield block[: min(chunk, left)]
            left -= chunk
        yield suffix

    def script(seen: Seen, reply: RawReply) -> bool:
        head = http_head(200, total_bytes if declare_length else None)
        return reply.send(head) and reply.stream(chunks())

    return script


def body_script(body: bytes, status: int = 200):
    """Reply ``body`` (any bytes, e.g. JSON nested 100000 deep) in one write."""

    def script(seen: Seen, reply: RawReply) -> bool:
        return reply.send(http_head(status, len(body)) + body)

    return script


def nested_json(depth: int) -> bytes:
    """``[[[...]]]`` nested ``depth`` levels."""
    return b"[" * depth + b"]" * depth


def server_extras_missing() -> str | None:
    """Why ``python -m llama_cpp.server`` cannot run here, or None if its extras import."""
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        return (
            f"llama_cpp.server extras are not installed ({exc}); "
            "pip install fastapi uvicorn sse-starlette starlette-context pydantic-settings"
        )
    return None


@dataclass
class LlamaServer:
    """A running ``python -m llama_cpp.server`` subprocess."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextlib.contextmanager
def llama_server(
    model_path: Path, log_path: Path, *, wait_s: float = 60.0
) -> Iterator[LlamaServer]:
    """Start llama_cpp.server on a free loopback port, wait for /v1/models, kill it at the end."""
    port = free_port()
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("llama_server_main.py")),  # llama_cpp.server, CPU quirks on
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--chat_format",
        "chatml-function-calling",
        "--n_threads",
        "1",  # one thread: two on a busy 2-core machine stall each other (10x slower here)
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", proc, log_path)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited with {proc.returncode}: {server.log_tail()}"
                )
            try:
                if (
                    httpx.get(f"{server.url}/models", timeout=2.0, trust_env=False).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama_cpp.server not ready after {wait_s:.0f} s: {server.log_tail()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def escalating_settings(tmp_path: Path, url: str, key: str, **extra):
    """Settings whose every request escalates to ``url`` (threshold 1.0), bounded and small."""
    from edgeagent.config import load_settings

    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    values = {
        "allow_network": True,
        "remote_url": url,
        "remote_api_key": key,
        "remote_timeout_s": 5.0,
        "remote_retries": 0,
        "confidence_threshold": 1.0,  # always below: always escalate
        "max_tokens": 48,
        "max_steps": 2,
        **extra,
    }
    return load_settings(home=tmp_path / "home", allowed_roots=(root,), **values)
