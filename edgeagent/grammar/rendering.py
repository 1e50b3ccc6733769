"""Rendering grammar trees as GBNF (llama.cpp), llguidance Lark, or a Python regex."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeagent.grammar.nodes import Alt, Cls, Lit, Node, Ranges, Ref, Rep, Seq

MAX_REPEAT = 2000  # llama.cpp refuses larger repetition bounds


def _gbnf_char(cp: int, in_class: bool) -> str:
    ch = chr(cp)
    if in_class:
        if ch.isascii() and not ch.isalnum():
            return f"\\x{cp:02X}"
        return ch
    if ch == '"':
        return '\\"'
    if ch == "\\":
        return "\\\\"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02X}"
    return ch


_LITERAL_ESCAPES = {cp: _gbnf_char(cp, False) for cp in [*range(0x20), 0x22, 0x5C, 0x7F]}


def render_literal(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.translate(_LITERAL_ESCAPES) + '"'


def render_class(ranges: Ranges, negated: bool) -> str:
    """A GBNF character class."""
    body = "".join(
        _gbnf_char(lo, True) if lo == hi else f"{_gbnf_char(lo, True)}-{_gbnf_char(hi, True)}"
        for lo, hi in ranges
    )
    return f"[{'^' if negated else ''}{body}]"


_ATOM, _SEQ, _ALT = 2, 1, 0


def render(node: Node, prec: int = _ALT, lark: LarkStyle | None = None) -> str:
    """GBNF text for ``node`` (or llguidance Lark with ``lark``); bounds above 2000 are split."""
    if isinstance(node, Lit):
        if lark is None:
            return render_literal(node.text)
        if lark.lexical:
            return lark_literal(node.text)
        parts = [lark_literal(t) for t in json_tokens(node.text)] or ['""']
        text = " ".join(parts)
        return f"({text})" if prec >= _ATOM and len(parts) > 1 else text
    if isinstance(node, Cls):
        text = render_class(node.ranges, node.negated)
        return text if lark is None else f"/{text}/"
    if isinstance(node, Ref):
        return node.name if lark is None else lark.names[node.name]
    if isinstance(node, Seq):
        if not node.items:
            return '""'
        text = " ".join(render(i, _SEQ, lark) for i in node.items)
        return text if prec <= _SEQ or len(node.items) == 1 else f"({text})"
    if isinstance(node, Alt):
        text = " | ".join(render(i, _ALT, lark) for i in node.items)
        return text if prec <= _ALT else f"({text})"
    inner = render(node.node, _ATOM, lark)
    if isinstance(node.node, Rep):
        # gbnf_to_lark drops the parentheses of ("a"{2}){1,3}; an empty literal keeps them
        inner = f"({inner})" if lark is not None else f'({inner} "")'
    text = _render_rep(inner, node.lo, node.hi)
    return f"({text})" if prec >= _ATOM and " " in text else text


@dataclass(frozen=True)
class LarkStyle:
    """Lark rendering context: ``lexical`` inside a terminal; ``names`` maps rule names."""

    lexical: bool
    names: dict[str, str]


def lark_literal(text: str) -> str:
    """A Lark (llguidance) string literal."""
    return '"' + text.translate(_LITERAL_ESCAPES) + '"'


def json_tokens(text: str) -> list[str]:
    """Split compact JSON text (complete tokens only) into its tokens."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "{}[],:":
            out.append(c)
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in '{}[],:"':
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _suffix(inner: str, lo: int, hi: int | None) -> str:
    if (lo, hi) == (0, 1):
        return f"{inner}?"
    if (lo, hi) == (0, None):
        return f"{inner}*"
    if (lo, hi) == (1, None):
        return f"{inner}+"
    if hi is None:
        return f"{inner}{{{lo},}}"
    if lo == hi:
        return f"{inner}{{{lo}}}"
    return f"{inner}{{{lo},{hi}}}"


def _render_rep(inner: str, lo: int, hi: int | None) -> str:
    parts: list[str] = []
    while lo > MAX_REPEAT:
        parts.append(_suffix(inner, MAX_REPEAT, MAX_REPEAT))
        lo -= MAX_REPEAT
        hi = None if hi is None else hi - MAX_REPEAT
    if hi is None or hi <= MAX_REPEAT:
        parts.append(_suffix(inner, lo, hi))
        return " ".join(parts)
    if lo:
        parts.append(_suffix(inner, lo, lo))
    parts.append(_upto(inner, hi - lo))
    return " ".join(parts)


def _upto(inner: str, n: int) -> str:
    """``inner{0,n}`` for n > 2000 without ambiguity: ``(inner{2000} R(n-2000) | inner{0,1999})``."""
    if n <= MAX_REPEAT:
        return _suffix(inner, 0, n)
    head = _suffix(inner, MAX_REPEAT, MAX_REPEAT)
    return f"({head} {_upto(inner, n - MAX_REPEAT)} | {_suffix(inner, 0, MAX_REPEAT - 1)})"


def to_python_regex(node: Node, rules: dict[str, Node] | None = None) -> str:
    """An equivalent Python regex (rules inlined; no recursion): for tests and debugging."""
    if isinstance(node, Lit):
        return re.escape(node.text)
    if isinstance(node, Cls):
        body = "".join(
            re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
            for lo, hi in node.ranges
        )
        if not body:
            return "(?s:.)" if node.negated else "(?!)"
        return f"[{'^' if node.negated else ''}{body}]"
    if isinstance(node, Ref):
        if rules is None:
            raise ValueError(f"unresolved rule {node.name}")
        return f"(?:{to_python_regex(rules[node.name], rules)})"
    if isinstance(node, Seq):
        return "".join(f"(?:{to_python_regex(i, rules)})" for i in node.items)
    if isinstance(node, Alt):
        return "|".join(f"(?:{to_python_regex(i, rules)})" for i in node.items)
    inner = f"(?:{to_python_regex(node.node, rules)})"
    hi = "" if node.hi is None else str(node.hi)
    return f"{inner}{{{node.lo},{hi}}}"
