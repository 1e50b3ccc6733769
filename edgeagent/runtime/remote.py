"""Client for a remote OpenAI-compatible ``/v1/chat/completions`` endpoint (the escalation path).

``RemoteClient`` refuses to exist when the network is not allowed (``OfflineError`` before any
socket is created), bounds every request (``remote_timeout_s``) and retries only what may pass
on a second try (connection errors, 5xx, 429; never a 4xx, never a read timeout: a slow model
stays slow). Every failure is a one-line ``RemoteError``. The API key is sent as a Bearer
header and scrubbed from every message, log record and repr this module produces; exceptions
from httpx are summarized, never chained, since their text can carry header values.

Replies are parsed into ``RemoteReply``: native ``tool_calls``, the legacy ``function_call``,
or (for servers without tool support) content that is itself a JSON call
``{"name": ..., "arguments": {...}}``, a list of them, or ``<tool_call>{...}</tool_call>`` blocks.
A call whose arguments are not a JSON object is kept with ``status="invalid"`` and an error.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from edgeagent.config import Settings
from edgeagent.errors import OfflineError, RemoteError
from edgeagent.types import Message, ToolCall

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
MAX_RETRIES = 10
BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
EXCERPT_CHARS = 160
REDACTED = "***"
_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


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


def _clip(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class RemoteClient:
    """A bounded, key-safe client of one OpenAI-compatible server.

    ``transport`` is handed to ``httpx.Client`` (tests, proxies). Use as a context manager or
    call ``close()``. Raises ``OfflineError`` when ``settings.allow_network`` is False or
    ``settings.offline`` is True, and ``RemoteError`` when no usable URL or key is configured.
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
        timeout_s = max(0.01, float(settings.remote_timeout_s))
        self.timeout = httpx.Timeout(timeout_s, connect=timeout_s)
        headers = {"Accept": "application/json"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        # No socket yet: httpx connects lazily on the first request.
        self._http = httpx.Client(
            headers=headers,
            timeout=self.timeout,
            transport=transport,
            proxy=None if transport is not None else env_proxy(self.url),
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

        Raises ``OfflineError`` if the settings forbid the network, ``RemoteError`` on
        connection failure, timeout, HTTP error, non-JSON body or a body without choices.
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
        response, attempts = self._post(payload)
        data = self._decode(response)
        reply = self._parse(data, time.perf_counter() - started, attempts)
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
        if settings.offline or not settings.allow_network:
            raise OfflineError(
                "the network is off, so the remote model cannot be used",
                hint="pass --online or set EDGEAGENT_ALLOW_NETWORK=1 to allow escalation",
            )

    def _scrub(self, text: str) -> str:
        """``text`` with the API key (and its Bearer header form) replaced by ``***``."""
        text = str(text)
        if self._secret:
            text = text.replace(self._secret, REDACTED)
        return text

    def _fail(self, message: str, hint: str | None = None) -> RemoteError:
        return RemoteError(self._scrub(" ".join(message.split())), hint)

    def _post(self, payload: dict) -> tuple[httpx.Response, int]:
        """Send with bounded retries; return the successful response and the attempt count."""
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = self._http.post(self.url, json=payload)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = self._fail(
                    f"cannot connect to the remote model at {self.display_url}: "
                    f"{self._describe(exc)}",
                    hint="is the server running? check EDGEAGENT_REMOTE_URL",
                )
            except httpx.TimeoutException as exc:
                kind = type(exc).__name__
                raise self._fail(
                    f"the remote model at {self.display_url} did not answer within "
                    f"{self.settings.remote_timeout_s:g} s ({kind})",
                    hint="raise EDGEAGENT_REMOTE_TIMEOUT_S or use a faster remote model",
                ) from None
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
                if response.is_success:
                    return response, attempt
                problem = self._http_error(response)
                if response.status_code not in RETRY_STATUSES:
                    raise problem from None
                retry_after = self._retry_after(response)
            if attempt > self.retries:
                if attempt > 1:
                    problem = RemoteError(
                        f"{problem.message} (after {attempt} attempts)", problem.hint
                    )
                raise problem from None
            delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(MAX_BACKOFF_S, max(delay, retry_after))
            log.info(
                "remote attempt %d/%d failed (%s); retrying in %.2fs",
                attempt,
                self.retries + 1,
                problem.message,
                delay,
            )
            time.sleep(delay)

    def _describe(self, exc: BaseException) -> str:
        text = _clip(self._scrub(str(exc)), 120)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after", "")
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def _http_error(self, response: httpx.Response) -> RemoteError:
        status = response.status_code
        excerpt = self._excerpt(response)
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
        reason = response.reason_phrase or ""
        return self._fail(f"remote model returned HTTP {status} {reason}{detail}".strip(), hint)

    def _excerpt(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except Exception:
            return ""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error") is not None:
            err = data["error"]
            text = err.get("message", err) if isinstance(err, dict) else err
            text = text if isinstance(text, str) else json.dumps(text)
        return _clip(self._scrub(text))

    def _decode(self, response: httpx.Response) -> dict:
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            raise self._fail(
                f"remote model returned a body that is not JSON (HTTP {response.status_code}, "
                f"{response.headers.get('content-type', 'no content type')}): "
                f"{self._excerpt(response) or 'empty'!r}",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible server?",
            ) from None
        if not isinstance(data, dict):
            raise self._fail(
                f"remote model returned JSON {type(data).__name__}, not an object: "
                f"{_clip(self._scrub(json.dumps(data)))!r}",
                hint="is EDGEAGENT_REMOTE_URL an OpenAI-compatible server?",
            )
        return data

    def _parse(self, data: dict, latency_s: float, attempts: int) -> RemoteReply:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if data.get("error") is not None:
                err = data["error"]
                text = err.get("message", err) if isinstance(err, dict) else err
                what = f"an error: {_clip(self._scrub(str(text)))}"
            else:
                what = f"no choices: {_clip(self._scrub(json.dumps(data)))!r}"
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
        calls = self._native_calls(message)
        if not calls and text:
            calls = _content_calls(text)
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

    def _native_calls(self, message: dict) -> list[ToolCall]:
        raw = message.get("tool_calls")
        if isinstance(raw, list) and raw:
            items = [item.get("function") if isinstance(item, dict) else None for item in raw]
        elif isinstance(message.get("function_call"), dict):
            items = [message["function_call"]]
        else:
            return []
        return [_make_call(item) for item in items]


def _make_call(function: Any) -> ToolCall:
    """One ``{"name", "arguments"}`` object (arguments as a JSON string or object) -> ToolCall."""
    if not isinstance(function, dict):
        return ToolCall(
            name="",
            arguments={},
            status="invalid",
            error="remote tool call has no function object",
            route="remote",
        )
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        return ToolCall(
            name="",
            arguments={},
            status="invalid",
            error="remote tool call has no function name",
            route="remote",
        )
    name = name.strip().rstrip(":")
    raw = function.get("arguments", function.get("parameters", {}))
    if raw is None or raw == "":
        raw = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            return ToolCall(
                name=name,
                arguments={},
                status="invalid",
                error=f"arguments are not valid JSON ({exc.args[0] if exc.args else exc}): "
                f"{_clip(function.get('arguments', ''), 80)!r}",
                route="remote",
            )
    if not isinstance(raw, dict):
        return ToolCall(
            name=name,
            arguments={},
            status="invalid",
            error=f"arguments must be a JSON object, got {type(raw).__name__}",
            route="remote",
        )
    return ToolCall(name=name, arguments=raw, route="remote")


def _looks_like_call(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("name"), str)
        and set(obj) <= {"name", "arguments", "parameters", "id", "type"}
        and ("arguments" in obj or "parameters" in obj)
    )


def _content_calls(text: str) -> list[ToolCall]:
    """Calls written as the message content by servers without native tool calling."""
    stripped = text.strip()
    blocks = _TOOL_CALL_RE.findall(stripped)
    if blocks:
        candidates: list[Any] = []
        for block in blocks:
            try:
                candidates.append(json.loads(block))
            except ValueError:
                candidates.append({"name": "", "arguments": {}})
        return [_make_call(c) if _looks_like_call(c) else _make_call(None) for c in candidates]
    fenced = _FENCE_RE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    if not stripped.startswith(("{", "[")):
        return []
    try:
        obj = json.loads(stripped)
    except ValueError:
        return []
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
        obj = obj["function"]
    if _looks_like_call(obj):
        return [_make_call(obj)]
    if isinstance(obj, list) and obj and all(_looks_like_call(o) for o in obj):
        return [_make_call(o) for o in obj]
    return []
