"""Code point sets (``Ranges``) and the JSON-string encoding of decoded characters.

Patterns and formats are parsed into trees over *decoded* characters; ``encode_json`` maps such
a tree to the JSON-escaped form a model actually writes between the quotes of a string.
"""

from __future__ import annotations

import functools
import json

from edgeagent.grammar.nodes import Alt, Cls, Lit, Node, Ranges, Rep, Seq, alt, rep, seq

MAX_CODEPOINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)


def _norm(ranges: list[tuple[int, int]]) -> Ranges:
    """Sorted, merged ranges with surrogates removed."""
    pieces: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if lo > hi:
            continue
        if hi < SURROGATES[0] or lo > SURROGATES[1]:
            pieces.append((lo, hi))
            continue
        if lo < SURROGATES[0]:
            pieces.append((lo, SURROGATES[0] - 1))
        if hi > SURROGATES[1]:
            pieces.append((SURROGATES[1] + 1, hi))
    pieces.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in pieces:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def cs(*items: str | tuple[int, int] | tuple[str, str]) -> Ranges:
    """A set from single characters and (lo, hi) pairs of code points or characters."""
    out: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, str):
            out.append((ord(item), ord(item)))
        else:
            lo, hi = item
            out.append(
                (ord(lo) if isinstance(lo, str) else lo, ord(hi) if isinstance(hi, str) else hi)
            )
    return _norm(out)


def union(*sets: Ranges) -> Ranges:
    return _norm([r for s in sets for r in s])


def complement(s: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in s:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODEPOINT:
        out.append((nxt, MAX_CODEPOINT))
    return _norm(out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    return complement(union(complement(a), complement(b)))


def subtract(a: Ranges, b: Ranges) -> Ranges:
    return intersect(a, complement(b))


def _scan(pred) -> Ranges:
    out: list[tuple[int, int]] = []
    for cp in range(MAX_CODEPOINT + 1):
        if SURROGATES[0] <= cp <= SURROGATES[1] or not pred(chr(cp)):
            continue
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return tuple(out)


@functools.cache
def _py_digit() -> Ranges:
    return _scan(str.isdecimal)


@functools.cache
def _py_word() -> Ranges:
    return _scan(lambda c: c.isalnum() or c == "_")


@functools.cache
def _py_space() -> Ranges:
    return _scan(str.isspace)


_ECMA_SETS: dict[str, Ranges] = {
    "d": _norm([(0x30, 0x39)]),
    "w": _norm([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]),
    "s": cs(
        "\t", "\n", "\v", "\f", "\r", " ", "\u00a0", "\u1680", (0x2000, 0x200A),
        "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff",
    ),
}  # fmt: skip
LINE_TERMINATORS = cs("\n", "\r", "\u2028", "\u2029")


def escape_set(letter: str, widen: bool) -> Ranges:
    """The set for ``\\d \\D \\w \\W \\s \\S``.

    JSON Schema patterns are ECMA-262 but validators often use Python ``re`` (Unicode-aware).
    A positive class uses the intersection of both meanings, so whatever the grammar emits
    matches under either; inside a negated class (``widen``) the union is used, for the same reason.
    """
    kind = letter.lower()
    ecma = _ECMA_SETS[kind]

    def inter() -> Ranges:
        if kind == "s":  # Python's \\s is str.isspace(); ECMA \\d, \\w are subsets of Python's
            return _norm([(c, c) for lo, hi in ecma for c in range(lo, hi + 1) if chr(c).isspace()])
        return ecma

    def uni() -> Ranges:
        return union(ecma, {"d": _py_digit, "w": _py_word, "s": _py_space}[kind]())

    if letter.islower():
        return uni() if widen else inter()
    return complement(inter() if widen else uni())


# --------------------------------------------------------------------------- JSON encoding

HEX = Cls(cs(("0", "9"), ("A", "F"), ("a", "f")))
_RAW_OK = complement(_norm([(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]))
_SHORT_ESC = {
    0x22: '\\"',
    0x5C: "\\\\",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
}


def _escapes(ranges: Ranges) -> list[Node]:
    """Canonical JSON escapes (as ``json.dumps`` writes them) of characters that cannot be raw."""
    short: list[Node] = []
    by_high: dict[int, list[int]] = {}
    for lo, hi in ranges:
        for cp in range(lo, hi + 1):
            if cp in _SHORT_ESC:
                short.append(Lit(_SHORT_ESC[cp]))
            else:
                by_high.setdefault(cp >> 4, []).append(cp & 0xF)
    long: list[Node] = []
    for high, lows in by_high.items():
        letters = [f"{v:x}" for v in lows]
        low_set = cs(*letters, *(c.upper() for c in letters if c.isalpha()))
        low = Lit(letters[0]) if len(lows) == 1 and not letters[0].isalpha() else Cls(low_set)
        long.append(seq(Lit(f"{high:x}"), low))
    if long:
        short.append(seq(Lit("\\u00"), alt(*long)))
    return short


def class_node(ranges: Ranges) -> Node:
    """A class node, negated when that is shorter."""
    comp = complement(ranges)
    if len(comp) < len(ranges):
        return Cls(comp, negated=True)
    return Cls(ranges)


@functools.lru_cache(maxsize=4096)
def encode_set(ranges: Ranges) -> Node:
    """Grammar for one decoded character from ``ranges``, as it appears inside a JSON string."""
    raw = intersect(ranges, _RAW_OK)
    parts: list[Node] = []
    if raw:
        if len(raw) == 1 and raw[0][0] == raw[0][1]:
            parts.append(Lit(chr(raw[0][0])))
        else:
            parts.append(class_node(raw))
    parts.extend(_escapes(subtract(ranges, _RAW_OK)))
    if not parts:
        return Cls(())  # matches nothing
    return alt(*parts)


def encode_json(node: Node) -> Node:
    """Map a tree over decoded characters to its JSON-string-content form."""
    if isinstance(node, Lit):
        return Lit(json_text(node.text)[1:-1])
    if isinstance(node, Cls):
        return encode_set(complement(node.ranges) if node.negated else node.ranges)
    if isinstance(node, Seq):
        return seq(*(encode_json(i) for i in node.items))
    if isinstance(node, Alt):
        return alt(*(encode_json(i) for i in node.items))
    if isinstance(node, Rep):
        return rep(encode_json(node.node), node.lo, node.hi)
    return node


def json_text(value: object) -> str:
    """Compact JSON as the grammar emits it (UTF-8 raw; ASCII escapes only for lone surrogates)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text
