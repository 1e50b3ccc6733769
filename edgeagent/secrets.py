"""Secret scrubbing: a secret is removed in every encoding it is likely to take in text we keep.

A key that a remote echoes back, or that ends up in a tool argument, reaches our output as the
raw string, JSON-escaped (once, or twice when JSON is nested in JSON), URL-encoded, base64 or
HTML-escaped. ``secret_variants`` lists those forms; ``scrub`` replaces each, longest first.
Limit: base64 is only matched when the key was encoded on its own, not as part of a longer blob.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET_LEN = 4
_PERCENT_RE = re.compile(r"%[0-9A-F]{2}")


def _json_inner(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


@lru_cache(maxsize=64)
def secret_variants(secret: str) -> tuple[str, ...]:
    """The forms ``secret`` takes in text: raw, JSON (once, twice, every character as
    ``\\uXXXX``), URL, base64, HTML and hex encodings, longest first.

    Secrets shorter than ``MIN_SECRET_LEN`` give no variants (they protect nothing, and
    replacing them would destroy ordinary text).
    """
    if not secret or len(secret) < MIN_SECRET_LEN:
        return ()
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {secret, secret.strip()}
    for ascii_only in (False, True):
        once = _json_inner(secret, ascii_only)
        forms |= {once, _json_inner(once, ascii_only)}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms |= {encoded, _PERCENT_RE.sub(lambda m: m.group(0).lower(), encoded)}
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode("ascii")
        forms |= {text, text.rstrip("=")}
    forms |= {html.escape(secret), html.escape(secret, quote=False)}
    forms |= {raw.hex(), raw.hex().upper()}  # hex dumps
    forms.add("".join(f"\\u{ord(c):04x}" for c in secret))  # JSON with every char escaped
    forms = {f for f in forms if len(f) >= MIN_SECRET_LEN}
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def scrub(text: str, secrets: Iterable[str | None], replacement: str = REDACTED) -> str:
    """``text`` with every variant of every secret replaced by ``replacement``."""
    if not text:
        return text
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.update(secret_variants(secret))
    for form in sorted(forms, key=lambda f: (-len(f), f)):
        if form in text:
            text = text.replace(form, replacement)
    return text


def scrub_value(value: object, secrets: Iterable[str | None], replacement: str = REDACTED):
    """``value`` (JSON-like: dicts, lists, strings) with secrets scrubbed from every string."""
    secrets = tuple(secrets)
    stack: list = []
    root = _scrub_copy(value, secrets, replacement, stack)
    while stack:
        target, key, item = stack.pop()
        target[key] = _scrub_copy(item, secrets, replacement, stack)
    return root


def _scrub_copy(value: object, secrets: tuple, replacement: str, stack: list):
    """One level of ``scrub_value``: scalars now, containers copied and their items queued."""
    if isinstance(value, str):
        return scrub(value, secrets, replacement)
    if isinstance(value, dict):
        out: dict = {}
        for key, item in value.items():
            new_key = scrub(key, secrets, replacement) if isinstance(key, str) else key
            out[new_key] = None
            stack.append((out, new_key, item))
        return out
    if isinstance(value, list | tuple):
        items: list = [None] * len(value)
        stack.extend((items, i, item) for i, item in enumerate(value))
        return items
    return value
