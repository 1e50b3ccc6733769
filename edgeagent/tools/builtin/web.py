"""http_get: the one network-tier built-in (refused while the network is off)."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field

from edgeagent.__about__ import __version__
from edgeagent.errors import OfflineError, ToolExecutionError, ToolValidationError
from edgeagent.tools.context import ToolContext
from edgeagent.tools.policy import NETWORK_OFF
from edgeagent.tools.registry import Tool, tool_from_function

HTTP_TIMEOUT_S = 10.0
HTTP_DEADLINE_S = 15.0  # whole request, including a server that drips bytes slowly
MAX_REDIRECTS = 5
TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")


def check_url(url: str) -> None:
    """Only absolute http(s) URLs with a host; else ToolValidationError."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        raise ToolValidationError(f"argument 'url': {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ToolValidationError(
            f"argument 'url': {url!r} is not an http or https URL",
            hint="pass a full URL such as https://example.org/page",
        )


def _url_validator(arguments: dict, context: Any) -> None:
    check_url(arguments["url"])


def _is_text(content_type: str) -> bool:
    return not content_type or any(t in content_type.lower() for t in TEXT_TYPES)


def make_web_tools(context: ToolContext) -> list[Tool]:
    """http_get, closed over ``context`` (it checks ``allow_network`` again before connecting)."""

    def http_get(
        url: Annotated[str, Field(min_length=1, max_length=2048)],
        max_bytes: Annotated[int, Field(ge=1, le=200_000)] = 20_000,
    ) -> str:
        """Fetch a web page (GET) and return its status and text.

        Args:
            url: full http or https URL
            max_bytes: read at most this many bytes of the body
        """
        if not context.allow_network:
            raise OfflineError(NETWORK_OFF)
        check_url(url)
        import httpx

        deadline = time.monotonic() + HTTP_DEADLINE_S
        body = bytearray()
        truncated = False
        try:
            with (
                httpx.Client(
                    timeout=HTTP_TIMEOUT_S,
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    headers={"User-Agent": f"edgeagent/{__version__}"},
                ) as client,
                client.stream("GET", url.strip()) as response,
            ):
                chunks = response.iter_bytes()
                for chunk in chunks:
                    body.extend(chunk)
                    if len(body) >= max_bytes:
                        truncated = len(body) > max_bytes or bool(next(chunks, b""))
                        break
                    if time.monotonic() > deadline:
                        truncated = True
                        break
                status = f"{response.status_code} {response.reason_phrase}".strip()
                final_url = str(response.url)
                content_type = response.headers.get("content-type", "")
                encoding = response.encoding or "utf-8"
        except httpx.HTTPError as exc:
            raise ToolExecutionError(
                f"could not fetch {url}: {type(exc).__name__}: {exc}",
                hint="check the URL and that the site is reachable",
            ) from exc
        head = f"HTTP {status}\nURL: {final_url}\nContent-Type: {content_type or 'unknown'}\n\n"
        if not _is_text(content_type):
            return head + f"[binary content ({len(body)} bytes read), not shown]"
        try:
            text = bytes(body[:max_bytes]).decode(encoding, errors="replace")
        except LookupError:
            text = bytes(body[:max_bytes]).decode("utf-8", errors="replace")
        tail = f"\n[... body cut at {max_bytes} bytes]" if truncated else ""
        return head + text + tail

    return [
        tool_from_function(
            http_get, risk="network", local_only=False, timeout_s=20.0, validators=(_url_validator,)
        )
    ]
