"""Servers on loopback for the remote tests: canned HTTP handlers and a real llama_cpp.server."""

from __future__ import annotations

import contextlib
import json
import socket
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
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.paths)


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
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


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
        "-m",
        "llama_cpp.server",
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
