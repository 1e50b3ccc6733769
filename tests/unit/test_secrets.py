"""Secret scrubbing in every encoding a key takes in output, JSON, URLs and SQLite text."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from edgeagent.secrets import REDACTED, scrub, scrub_value, secret_variants
from edgeagent.store import scrub_secrets

KEY = 'sk-"q\\b-ECHO-7731-secret'  # a quote and a backslash: JSON escapes both
PLAIN = "sk-test-9Qz7-SECRET-4b1e0c"


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: k,
        lambda k: json.dumps(k)[1:-1],
        lambda k: json.dumps(k, ensure_ascii=False)[1:-1],
        lambda k: json.dumps(json.dumps(k)[1:-1])[1:-1],  # JSON inside JSON
        lambda k: quote(k, safe=""),
        lambda k: re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(k, safe="")),
        lambda k: quote_plus(k),
        lambda k: base64.b64encode(k.encode()).decode(),
        lambda k: base64.urlsafe_b64encode(k.encode()).decode().rstrip("="),
        lambda k: html.escape(k),
    ],
)
@pytest.mark.parametrize("key", [KEY, PLAIN, "clé-ünïcode-§-42"])
def test_every_encoding_is_scrubbed(encode, key):
    form = encode(key)
    text = f"before {form} after"
    out = scrub(text, [key])
    assert form not in out, out
    assert out.startswith("before ") and out.endswith(" after")
    assert REDACTED in out


def test_json_dumps_of_text_holding_the_key_is_clean():
    record = json.dumps({"answer": f"your key is {KEY}", "args": {"k": KEY}})
    out = scrub(record, [KEY])
    assert KEY not in out and json.dumps(KEY)[1:-1] not in out
    json.loads(out)  # the replacement keeps the JSON valid


def test_short_and_empty_secrets_are_ignored():
    assert secret_variants("abc") == ()
    assert secret_variants("") == ()
    assert scrub("abc abc", ["abc", "", None]) == "abc abc"
    assert scrub("", [KEY]) == ""


def test_variants_are_longest_first_and_distinct():
    forms = secret_variants(KEY)
    assert len(forms) == len(set(forms))
    assert [len(f) for f in forms] == sorted((len(f) for f in forms), reverse=True)
    assert KEY in forms and json.dumps(KEY)[1:-1] in forms


def test_scrub_value_walks_nested_json_without_recursion():
    deep: object = KEY
    for _ in range(5000):  # deeper than the recursion limit
        deep = [deep]
    out = scrub_value({"k": deep, KEY: 1}, [KEY], "***")
    assert set(out) == {"k", "***"}
    leaf = out["k"]
    while isinstance(leaf, list):
        leaf = leaf[0]
    assert leaf == "***"


def test_store_scrubber_uses_every_encoding():
    stored = json.dumps({"expression": f"1+1 # {KEY}"}, ensure_ascii=False)
    out = scrub_secrets(stored, [KEY])
    assert KEY not in out and json.dumps(KEY)[1:-1] not in out
    assert "[redacted]" in out
    assert scrub_secrets(None, [KEY]) is None


def test_hex_and_fully_unicode_escaped_forms_are_scrubbed():
    from edgeagent.secrets import scrub

    key = 'sk-"q\\b-ECHO-7731'
    raw = key.encode()
    for form in (raw.hex(), raw.hex().upper(), "".join(f"\\u{ord(c):04x}" for c in key)):
        assert scrub(f"x {form} y", [key]) == "x [redacted] y"
