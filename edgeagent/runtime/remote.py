"""Client for a remote OpenAI-compatible ``/v1/chat/completions`` endpoint (the escalation path).

The remote is treated as hostile. ``RemoteClient`` refuses to exist when the network is not
allowed (``OfflineError`` before any socket is created). One ``chat`` has a TOTAL deadline of
``remote_timeout_s``: connect, TLS, writes, every read, retries and backoff share it (see
``runtime.deadline``), so a server dripping one byte a second cannot hold it longer. Retries
cover only what may pass on a second try (connection errors, 5xx, 429; never a 4xx, never a
timeout). The reply is streamed and cut at ``MAX_REPLY_BYTES``; its JSON may nest at most
``MAX_JSON_DEPTH`` levels. Every failure is a one-line ``RemoteError``, never a traceback.
The API key is sent as a Bearer header and scrubbed, in every encoding (``edgeagent.secrets``),
from every message, log record and repr this module produces and from the reply itself (text,
call names, arguments, errors) before it is returned; exceptions from httpx are summarized,
never chained, since their text can carry header values.

Replies are parsed into ``RemoteReply`` by ``runtime.remote_parse``: native ``tool_calls``, the
legacy ``function_call``, or content that is itself a JSON call (or a list of them, or
``<tool_call>`` blocks). A call whose arguments are not a JSON object is kept with
``status="invalid"``, its error and empty arguments that must never be filled with defaults.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from edgeagent.config import Settings
from edgeagent.errors import OfflineError, RemoteError
from edgeagent.runtime.deadline import Deadline, deadline_scope, deadline_transport
from edgeagent.runtime.remote_parse import (
    MAX_JSON_DEPTH,
    JSONTooDeepError,
    clip,
    content_calls,
    native_calls,
    parse_json,
)
from edgeagent.secrets import scrub, scrub_value
from edgeagent.types import Message, ToolCall

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
MAX_RETRIES = 10
BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
MAX_REPLY_BYTES = 4 * 1024 * 1024  # a chat completion is kilobytes; more is a flood
MAX_ERROR_BYTES = 64 * 1024  # of an error body, only an excerpt is shown
REDACTED = "***"


@dataclass(frozen=True)
class RemoteReply:
    """What the remote model answered: text and/or calls (``route="remote"``), usage, timing."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    model: str = ""
    finish_reason: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class _Received:
    """A response's status line and headers, and its body read under the size cap."""

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def normalize_base_url(url: str) -> str:
    """``http://h:p``, ``http://h:p/v1`` or ``.../v1/chat/completions`` -> ``http://h:p`` (no slash)."""
    base = url.strip().rstrip("/")
    for suffix in (CHAT_PATH, "/chat/completions", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)].rstrip("/")
            break
    return base


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment (safe to show and log)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable URL>"


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY`` ...), never for loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return None
    proxies = urllib.request.getproxies_environment()
    if urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all") or None


def to_openai_messages(messages: Iterable[dict | Message]) -> list[dict]:
    """Chat messages as OpenAI dicts; ``Message`` objects are converted (``call_id`` -> ``tool_call_id``)."""
    out: list[dict] = []
    for msg in messages:
        if isinstance(msg, Message):
            item: dict[str, Any] = {"role": msg.role, "content": msg.content}
            if msg.role == "tool" and msg.call_id:
                item["tool_call_id"] = msg.call_id
            if msg.name and msg.role != "tool":
                item["name"] = msg.name
            out.append(item)
        elif isinstance(msg, dict):
            out.append(msg)
        else:
            raise TypeError(f"a chat message must be a dict or Message, got {type(msg).__name__}")
    return out


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class RemoteClient:
    """A bounded, key-safe client of one OpenAI-compatible server.

    ``transport`` is handed to ``httpx.Client`` (tests, proxies); without one, the client's
    sockets obey the total deadline (``runtime.deadline``); with one, the deadline is checked
    between attempts and body chunks only. Use as a context manager or call ``close()``.
    Raises ``OfflineError`` when ``settings.allow_network`` is False or ``settings.offline`` is
    True, and ``RemoteError`` when no usable URL or key is configured.
    """

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self._check_online(settings)
        raw_url = (settings.remote_url or "").strip()
        if not raw_url:
            raise RemoteError(
                "no remote endpoint is configured",
                hint="set EDGEAGENT_REMOTE_URL (e.g. http://127.0.0.1:8080/v1) or remote_url in config.toml",
            )
        self._secret = (settings.remote_api_key or "").strip() or None
        base = normalize_base_url(raw_url)
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(
                f"remote URL {self._scrub(redact_url(base))!r} is not an http(s) URL",
                hint="set EDGEAGENT_REMOTE_URL to something like http://127.0.0.1:8080/v1",
            )
        if parts.username is not None or parts.password is not None:
            raise RemoteError(
                f"remote URL {self._scrub(redact_url(base))!r} carries credentials",
                hint="remove them from EDGEAGENT_REMOTE_URL; set EDGEAGENT_REMOTE_API_KEY instead",
            )
        if self._secret is not None and not (self._secret.isascii() and self._secret.isprintable()):
            raise RemoteError(
                "the remote API key contains characters an HTTP header cannot carry",
                hint="check EDGEAGENT_REMOTE_API_KEY (no newlines, control characters or non-ASCII)",
            )
        self.settings = settings
        self.base_url = base
        self.url = base + CHAT_PATH
        self.display_url = self._scrub(redact_url(self.url))
        self.model = settings.remote_model or ""
        self.retries = max(0, min(int(settings.remote_retries), MAX_RETRIES))
        self.timeout_s = max(0.01, float(settings.remote_timeout_s))
        self.timeout = httpx.Timeout(self.timeout_s, connect=self.timeout_s)
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        # No socket yet: httpx connects lazily on the first request.
        self._http = httpx.Client(
            headers=headers,
            timeout=self.timeout,
            transport=transport or deadline_transport(env_proxy(self.url)),
            follow_redirects=False,
            trust_env=False,  # no .netrc credentials; proxies come from env_proxy only
        )

    # --- public -----------------------------------------------------------------------------

    def chat(
        self,
        messages: list[dict] | list[Message],
        tools: list[dict] | None = None,
        *,
        tool_choice: str | dict = "auto",
        max_tokens: int = 512,
        temperature: float | None = 0.0,
    ) -> RemoteReply:
        """POST one chat completion with ``tools`` (OpenAI format) and parse the reply.

        Everything, retries included, ends within ``remote_timeout_s``. Raises ``OfflineError``
        if the settings forbid the network, ``RemoteError`` on connection failure, deadline,
        HTTP error, an oversized, non-JSON or too deeply nested body, or one without choices.
        The reply comes back with the API key scrubbed from its text, calls and errors.
        """
        self._check_online(self.settings)
        payload: dict[str, Any] = {
            "messages": to_openai_messages(messages),
            "max_tokens": int(max_tokens),
            "stream": False,
        }
        if self.model:
            payload["model"] = self.model
        if temperature is not None:
            payload["temperature"] = temperature
        if tools:
            payload["tools"] = list(tools)
            payload["tool_choice"] = tool_choice
        started = time.perf_counter()
        deadline = Deadline(self.timeout_s)
        with deadline_scope(deadline):
            received, attempts = self._post(payload, deadline)
        data = self._decode(received)
        reply = self._clean(self._parse(data, time.perf_counter() - started, attempts))
        log.debug(
            "remote %s: %d call(s), %d+%d tokens, %.2fs, %d attempt(s)",
            self.display_url,
            len(reply.calls),
            reply.prompt_tokens,
            reply.output_tokens,
            reply.latency_s,
            attempts,
        )
        return reply

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteClient(url={self.display_url!r}, model={self.model!r})"

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    def _check_online(settings: Settings) -> None:
        if not settings.network_allowed:
            raise OfflineError(
                "the network is off, so the remote model cannot be used",
                hint="pass --online or set EDGEAGENT_ALLOW_NETWORK=1 to allow escalation",
            )

    def _scrub(self, text: str) -> str:
        """``text`` with the API key, in any encoding, replaced by ``***``."""
        return scrub(str(text), (self._secret,), REDACTED) if self._secret else str(text)

    def _fail(self, message: str, hint: str | None = None) -> RemoteError:
        return RemoteError(self._scrub(" ".join(message.split())), hint)

    def _clean(self, reply: RemoteReply) -> RemoteReply:
        """The reply with the API key scrubbed from everything the remote wrote."""
        if not self._secret:
            return reply
        for call in reply.calls:
            call.name = self._scrub(call.name)
            call.arguments = scrub_value(call.arguments, (self._secret,), REDACTED)
            call.error = self._scrub(call.error) if call.error else call.error
        finish = self._scrub(reply.finish_reason) if reply.finish_reason else reply.finish_reason
        return replace(
            reply,
            text=self._scrub(reply.text),
            model=self._scrub(reply.model),
            finish_reason=finish,
        )

    def _late(self, exc: BaseException | None = None) -> RemoteError:
        kind = f" ({type(exc).__name__})" if exc is not None else ""
        return self._fail(
            f"the remote model at {self.display_url} did not finish within "
            f"{self.settings.remote_timeout_s:g} s{kind}",
            hint="raise EDGEAGENT_REMOTE_TIMEOUT_S or use a faster remote model",
        )

    def _post(self, payload: dict, deadline: Deadline) -> tuple[_Received, int]:
        """Send with bounded retries within ``deadline``; return the 2xx response and attempts."""
        attempt = 0
        while True:
            attempt += 1
            if deadline.expired:
                raise self._late() from None
            retry_after: float | None = None
            try:
                received = self._send(payload, deadline)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if deadline.expired:
                    raise self._late(exc) from None
                problem = self._fail(
                    f"cannot connect to the remote model at {self.display_url}: "
                    f"{self._describe(exc)}",
                    hint="is the server running? check EDGEAGENT_REMOTE_URL",
                )
            except httpx.TimeoutException as exc:
                raise self._late(exc) from None
            except httpx.RemoteProtocolError as exc:
                problem = self._fail(
                    f"the remote model at {self.display_url} dropped the connection: "
                    f"{self._describe(exc)}",
                    hint="check the server's log",
                )
            except httpx.HTTPError as exc:
                raise self._fail(
                    f"request to the remote model at {self.display_url} failed: "
                    f"{self._describe(exc)}",
                    hint="check EDGEAGENT_REMOTE_URL and EDGEAGENT_REMOTE_API_KEY",
                ) from None
            else:
                if received.ok:
                    return received, attempt
                problem = self._http_error(received)
                if received.status not in RETRY_STATUSES:
                    raise problem from None
                retry_after = self._retry_after(received)
            delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(MAX_BACKOFF_S, max(delay, retry_after))
            if attempt > self.retries or delay >= deadline.remaining():
                if attempt > 1:
                    problem = RemoteError(
                        f"{problem.message} (after {attempt} attempts)", problem.hint
                    )
                raise problem from None
            log.info(
                "remote attempt %d/%d failed (%s); retrying in %.2fs",
                attempt,
                self.retries + 1,
                problem.message,
                delay,
            )
            time.sleep(delay)

    def _send(self, payload: dict, deadline: Deadline) -> _Received:
        """One POST; the body is streamed and cut at ``MAX_REPLY_BYTES`` (a 2xx) or an excerpt."""
        with self._http.stream("POST", self.url, json=payload) as response:
            ok = response.is_success
            cap = MAX_REPLY_BYTES if ok else MAX_ERROR_BYTES
            declared = response.headers.get("content-length", "")
            if ok and declared.isdigit() and int(declared) > cap:
                raise self._too_big(f"announced {int(declared):,} bytes")
            in_memory = response.is_stream_consumed  # a test transport handed over a body
            decoder = (
                None
                if in_memory
                else self._body_decoder(response.headers.get("content-encoding", ""))
            )
            body = bytearray()
            for raw in [response.content] if in_memory else response.iter_raw():
                # decompress at most one byte past the cap: a zip bomb never expands in memory
                body += decoder.decompress(raw, cap + 1 - len(body)) if decoder else raw
                if len(body) > cap:
                    if ok:
                        raise self._too_big(f"sent more than {cap:,} bytes")
                    del body[cap:]
                    break
                if deadline.expired:  # an injected transport does not enforce the deadline
                    raise self._late()
            return _Received(
                response.status_code, response.reason_phrase or "", response.headers, bytes(body)
            )

    def _body_decoder(self, encoding: str):
        """A bounded decompressor for one ``gzip``/``deflate`` layer; None for identity.

        Stacked (``gzip, gzip``) or unknown encodings are refused: each layer multiplies what a
        few hundred bytes can expand to.
        """
        import zlib

        layers = [e.strip().lower() for e in encoding.split(",") if e.strip()]
        layers = [e for e in layers if e != "identity"]
        if not layers:
            return None
        if len(layers) == 1 and layers[0] in ("gzip", "x-gzip", "deflate"):
            wbits = 16 + zlib.MAX_WBITS if "gzip" in layers[0] else zlib.MAX_WBITS
            return zlib.decompressobj(wbits)
        raise self._fail(
            f"the remote model at {self.display_url} sent a body in the content encoding "
            f"{clip(encoding, 60)!r}; only one gzip or deflate layer is accepted",
            hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible chat completions server?",
        )

    def _too_big(self, what: str) -> RemoteError:
        return self._fail(
            f"the remote model at {self.display_url} {what}; a reply may have at most "
            f"{MAX_REPLY_BYTES // (1024 * 1024)} MB, so it was cut off unread",
            hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible chat completions server?",
        )

    def _describe(self, exc: BaseException) -> str:
        text = clip(self._scrub(str(exc)), 120)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    @staticmethod
    def _retry_after(received: _Received) -> float | None:
        value = received.headers.get("retry-after", "")
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def _http_error(self, received: _Received) -> RemoteError:
        status = received.status
        excerpt = self._excerpt(received.body)
        detail = f": {excerpt}" if excerpt else ""
        if status in (401, 403):
            hint = "check EDGEAGENT_REMOTE_API_KEY"
        elif status == 404:
            hint = "check EDGEAGENT_REMOTE_URL: the server must serve /v1/chat/completions"
        elif status == 429:
            hint = "the remote is rate-limiting; try again later"
        elif status >= 500:
            hint = "the remote server failed; check its log"
        else:
            hint = (
                "the remote rejected the request; check EDGEAGENT_REMOTE_MODEL and its tool support"
            )
        return self._fail(
            f"remote model returned HTTP {status} {received.reason}{detail}".strip(), hint
        )

    def _excerpt(self, body: bytes) -> str:
        text = body.decode("utf-8", "replace")
        try:
            data = parse_json(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error") is not None:
            err = data["error"]
            text = err.get("message", err) if isinstance(err, dict) else err
            text = text if isinstance(text, str) else json.dumps(text)
        return clip(self._scrub(text))

    def _decode(self, received: _Received) -> dict:
        try:
            data = parse_json(received.body)
        except JSONTooDeepError:
            raise self._fail(
                f"remote model returned JSON nested deeper than {MAX_JSON_DEPTH} levels",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible server?",
            ) from None
        except ValueError:  # includes UnicodeDecodeError
            raise self._fail(
                f"remote model returned a body that is not JSON (HTTP {received.status}, "
                f"{received.headers.get('content-type', 'no content type')}): "
                f"{self._excerpt(received.body) or 'empty'!r}",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible server?",
            ) from None
        if not isinstance(data, dict):
            raise self._fail(
                f"remote model returned JSON {type(data).__name__}, not an object: "
                f"{clip(self._scrub(received.body.decode('utf-8', 'replace')))!r}",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible server?",
            )
        return data

    def _parse(self, data: dict, latency_s: float, attempts: int) -> RemoteReply:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if data.get("error") is not None:
                err = data["error"]
                text = err.get("message", err) if isinstance(err, dict) else err
                what = f"an error: {clip(self._scrub(str(text)))}"
            else:
                what = f"no choices: {clip(self._scrub(json.dumps(data)))!r}"
            raise self._fail(
                f"remote model returned {what}",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible chat completions server?",
            )
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise self._fail(
                "remote model returned a choice without a message",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible chat completions server?",
            )
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        calls = native_calls(message)
        if not calls and text:
            calls = content_calls(text)
            if calls:
                text = ""
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        model = data.get("model") if isinstance(data.get("model"), str) else self.model
        finish = choice.get("finish_reason")
        return RemoteReply(
            text=text.strip(),
            calls=calls,
            prompt_tokens=_as_int(usage.get("prompt_tokens")),
            output_tokens=_as_int(usage.get("completion_tokens")),
            latency_s=latency_s,
            model=model,
            finish_reason=finish if isinstance(finish, str) else None,
            attempts=attempts,
        )
