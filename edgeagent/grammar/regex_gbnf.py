"""GBNF building blocks: a small grammar AST, its renderer, and the regex/format subset.

The compiler builds grammars as trees of ``Lit``/``Cls``/``Ref``/``Seq``/``Alt``/``Rep`` nodes and
renders them once at the end. This module also parses the documented JSON Schema ``pattern``
subset (see ``grammars/README.md``) into the same nodes over *decoded* characters, and encodes
them into the JSON-escaped form a model actually writes between the quotes of a string.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from edgeagent.errors import GrammarError

MAX_REPEAT = 2000  # llama.cpp refuses larger repetition bounds
MAX_CODEPOINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)

Ranges = tuple[tuple[int, int], ...]


# --------------------------------------------------------------------------- grammar AST


# Nodes are named tuples (hashing and equality run in C: the compiler dedupes rules by body);
# the trailing ``kind`` tag keeps e.g. Lit("a") and Ref("a") unequal.


class Lit(NamedTuple):
    """A literal string."""

    text: str
    kind: str = "lit"


class Cls(NamedTuple):
    """A character class over code points; ``negated`` means every code point not listed."""

    ranges: Ranges
    negated: bool = False
    kind: str = "cls"


class Ref(NamedTuple):
    """A reference to a named rule."""

    name: str
    kind: str = "ref"


class Seq(NamedTuple):
    """A concatenation; ``Seq(())`` is the empty string."""

    items: tuple[Node, ...]
    kind: str = "seq"


class Alt(NamedTuple):
    """An alternation."""

    items: tuple[Node, ...]
    kind: str = "alt"


class Rep(NamedTuple):
    """``node`` repeated ``lo`` to ``hi`` times (``hi`` None: unbounded)."""

    node: Node
    lo: int
    hi: int | None
    kind: str = "rep"


Node = Lit | Cls | Ref | Seq | Alt | Rep
EMPTY = Seq(())


def seq(*items: Node) -> Node:
    """A simplified concatenation: nested sequences flattened, adjacent literals merged."""
    out: list[Node] = []
    for item in items:
        parts = item.items if isinstance(item, Seq) else (item,)
        for part in parts:
            if isinstance(part, Lit):
                if not part.text:
                    continue
                if out and isinstance(out[-1], Lit):
                    out[-1] = Lit(out[-1].text + part.text)
                    continue
            out.append(part)
    return out[0] if len(out) == 1 else Seq(tuple(out))


def alt(*items: Node) -> Node:
    """A simplified alternation: nested alternations flattened, duplicates dropped."""
    out: list[Node] = []
    seen: set[Node] = set()
    has_empty = False
    for item in items:
        for part in item.items if type(item) is Alt else (item,):
            if part == EMPTY or (type(part) is Lit and not part.text):
                has_empty = True
            elif part not in seen:
                seen.add(part)
                out.append(part)
    if not out:
        return EMPTY
    node = out[0] if len(out) == 1 else Alt(tuple(out))
    return opt(node) if has_empty else node


def rep(node: Node, lo: int, hi: int | None) -> Node:
    """``node{lo,hi}`` simplified."""
    if hi == 0 or node == EMPTY:
        return EMPTY
    if lo == hi == 1:
        return node
    if isinstance(node, Rep) and node.lo == 0 and node.hi == 1 and lo == 0 and hi == 1:
        return node
    if isinstance(node, Rep) and node.lo == node.hi and lo == hi:  # (x{a}){n} is x{a*n}
        return rep(node.node, node.lo * lo, node.lo * lo)
    return Rep(node, lo, hi)


def opt(node: Node) -> Node:
    """``node?``."""
    if node == EMPTY:
        return EMPTY
    if isinstance(node, Rep) and node.lo == 0:
        return node
    return Rep(node, 0, 1)


def refs_in(node: Node) -> list[str]:
    """Names of the rules ``node`` refers to, in order of appearance."""
    out: list[str] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, Ref):
            out.append(cur.name)
        elif isinstance(cur, Seq | Alt):
            stack.extend(reversed(cur.items))
        elif isinstance(cur, Rep):
            stack.append(cur.node)
    return out


def has_empty_class(node: Node) -> bool:
    """True if ``node`` contains a class that matches nothing (e.g. from ``[^\\s\\S]``)."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, Cls):
            if not cur.ranges and not cur.negated:
                return True
        elif isinstance(cur, Seq | Alt):
            stack.extend(cur.items)
        elif isinstance(cur, Rep):
            stack.append(cur.node)
    return False


# --------------------------------------------------------------------------- rendering


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


def length_bounds(node: Node) -> tuple[int, int | None]:
    """Min and max number of characters ``node`` matches (no rule references)."""
    if isinstance(node, Lit):
        return len(node.text), len(node.text)
    if isinstance(node, Cls):
        return 1, 1
    if isinstance(node, Seq):
        lo, hi = 0, 0
        for item in node.items:
            a, b = length_bounds(item)
            lo += a
            hi = None if hi is None or b is None else hi + b
        return lo, hi
    if isinstance(node, Alt):
        bounds = [length_bounds(i) for i in node.items]
        his = [b for _, b in bounds]
        return min(a for a, _ in bounds), None if None in his else max(his)  # type: ignore[type-var]
    if isinstance(node, Rep):
        a, b = length_bounds(node.node)
        hi = None if node.hi is None or b is None else b * node.hi
        return a * node.lo, hi
    raise ValueError("length_bounds needs a tree without rule references")


# --------------------------------------------------------------------------- code point sets


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


# --------------------------------------------------------------------------- regex subset


@dataclass(frozen=True)
class PatternBranch:
    """One top-level alternative of a pattern: its tree and whether it is anchored at each end."""

    node: Node
    start: bool
    end: bool


_MAX_COUNT = 10000


class _RegexParser:
    """Recursive-descent parser for the documented ECMA-262 subset."""

    def __init__(self, src: str, cap: int, path: str) -> None:
        self.src, self.pos, self.cap, self.path = src, 0, cap, path
        self.capped = False

    def fail(self, what: str, hint: str | None = None) -> GrammarError:
        return GrammarError(
            f"pattern {self.src!r}: {what} (at offset {self.pos})",
            keyword="pattern",
            path=self.path,
            hint=hint or "use the regex subset documented in grammars/README.md",
        )

    def peek(self, n: int = 1) -> str:
        return self.src[self.pos : self.pos + n]

    def parse(self) -> list[PatternBranch]:
        branches = [self.branch(top=True)]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.branch(top=True))
        if self.pos != len(self.src):
            raise self.fail("unbalanced ')'")
        return branches

    def branch(self, top: bool) -> PatternBranch:
        start = end = False
        if self.peek() == "^":
            if not top:
                raise self.fail("'^' is only supported at the start of the pattern")
            start = True
            self.pos += 1
        items: list[Node] = []
        while self.pos < len(self.src) and self.peek() not in "|)":
            if self.peek() == "$":
                self.pos += 1
                if not top or self.peek() not in ("", "|"):
                    raise self.fail("'$' is only supported at the end of the pattern")
                end = True
                break
            if self.peek() == "^":
                raise self.fail("'^' is only supported at the start of the pattern")
            items.append(self.quantified())
        return PatternBranch(seq(*items), start, end)

    def alternation(self) -> Node:
        parts = [self.branch(top=False).node]
        while self.peek() == "|":
            self.pos += 1
            parts.append(self.branch(top=False).node)
        return alt(*parts)

    def quantified(self) -> Node:
        atom = self.atom()
        bounds = self.quantifier()
        if bounds is None:
            return atom
        if self.peek() == "?":
            self.pos += 1  # lazy: same set of matching strings
        if self.peek() in ("*", "+", "?") or self.counted() is not None:
            raise self.fail("a quantifier cannot follow a quantifier")
        lo, hi = bounds
        if hi is None:
            hi = max(lo, self.cap)
            self.capped = True
        return rep(atom, lo, hi)

    def counted(self) -> tuple[int, int | None] | None:
        m = re.match(r"\{(\d+)(,(\d*))?\}", self.src[self.pos :])
        if not m:
            return None
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
        return lo, hi

    def quantifier(self) -> tuple[int, int | None] | None:
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.pos += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        bounds = self.counted()
        if bounds is None:
            return None
        lo, hi = bounds
        if hi is not None and hi < lo:
            raise self.fail(f"quantifier {{{lo},{hi}}} has max below min")
        if lo > _MAX_COUNT or (hi or 0) > _MAX_COUNT:
            raise self.fail(f"repetition count above {_MAX_COUNT}")
        self.pos = self.src.index("}", self.pos) + 1
        return bounds

    def atom(self) -> Node:
        ch = self.peek()
        if ch == "(":
            return self.group()
        if ch == "[":
            return self.char_class()
        if ch == ".":
            self.pos += 1
            return Cls(complement(LINE_TERMINATORS))
        if ch == "\\":
            return self.escape(in_class=False, widen=False)
        if ch in ("*", "+", "?") or (ch == "{" and self.counted() is not None):
            raise self.fail("nothing to repeat")
        if ch == ")":
            raise self.fail("unbalanced ')'")
        self.pos += 1
        return self.char_node(ch)

    def char_node(self, ch: str) -> Node:
        if SURROGATES[0] <= ord(ch) <= SURROGATES[1]:
            raise self.fail("lone surrogate characters cannot be matched")
        return Lit(ch)

    def group(self) -> Node:
        self.pos += 1
        if self.peek() == "?":
            head = self.peek(3)
            if head.startswith("?:"):
                self.pos += 2
            elif head in ("?=", "?!") or head[:2] in ("?=", "?!") or head in ("?<=", "?<!"):
                raise self.fail("lookaround assertions are not supported")
            elif head.startswith("?<"):
                m = re.match(r"\?<([A-Za-z_$][A-Za-z0-9_$]*)>", self.src[self.pos :])
                if not m:
                    raise self.fail("malformed named group")
                self.pos += m.end()
            else:
                raise self.fail("inline flags and extensions like (?i) or (?P are not supported")
        node = self.alternation()
        if self.peek() != ")":
            raise self.fail("missing ')'")
        self.pos += 1
        return node

    def escape(self, in_class: bool, widen: bool) -> Node:
        self.pos += 1
        ch = self.peek()
        if not ch:
            raise self.fail("pattern ends with a lone backslash")
        self.pos += 1
        if ch in "dDwWsS":
            return Cls(escape_set(ch, widen))
        simple = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}
        if ch in simple:
            return Lit(simple[ch])
        if ch == "b":
            if in_class:
                return Lit("\b")
            raise self.fail("word boundary assertions (\\b) are not supported")
        if ch == "B":
            raise self.fail("word boundary assertions (\\B) are not supported")
        if ch == "0" and not self.peek().isdigit():
            return Lit("\0")
        if ch.isdigit() or ch == "k":
            raise self.fail("backreferences are not supported")
        if ch == "x":
            m = re.match(r"[0-9A-Fa-f]{2}", self.src[self.pos :])
            if not m:
                raise self.fail("\\x needs two hex digits")
            self.pos += 2
            return Lit(chr(int(m.group(0), 16)))
        if ch == "u":
            m = re.match(r"[0-9A-Fa-f]{4}", self.src[self.pos :])
            if not m:
                raise self.fail("\\u needs four hex digits (\\u{...} is not supported)")
            self.pos += 4
            return self.char_node(chr(int(m.group(0), 16)))
        if ch in "pP":
            raise self.fail("Unicode property escapes (\\p{...}) are not supported")
        if ch.isascii() and ch.isalnum():
            raise self.fail(f"unknown escape \\{ch}")
        return self.char_node(ch)

    def char_class(self) -> Node:
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        if self.peek() == "]":
            raise self.fail("empty classes [] and [^] are not supported")
        acc: list[Ranges] = []
        while True:
            if self.pos >= len(self.src):
                raise self.fail("missing ']'")
            if self.peek() == "]":
                self.pos += 1
                break
            lo = self.class_atom(negated)
            if self.peek() == "-" and self.peek(2)[1:] not in ("]", ""):
                self.pos += 1
                hi = self.class_atom(negated)
                if not (isinstance(lo, Lit) and isinstance(hi, Lit)):
                    raise self.fail("a class escape like \\d cannot bound a range")
                a, b = ord(lo.text), ord(hi.text)
                if a > b:
                    raise self.fail("class range out of order")
                acc.append(_norm([(a, b)]))
            elif isinstance(lo, Lit):
                acc.append(cs(lo.text))
            else:
                acc.append(lo.ranges)  # type: ignore[union-attr]
        ranges = union(*acc)
        return Cls(complement(ranges) if negated else ranges)

    def class_atom(self, negated: bool) -> Node:
        ch = self.peek()
        if ch == "\\":
            return self.escape(in_class=True, widen=negated)
        if ch == "[" and self.peek(2) in ("[:", "[=", "[."):
            raise self.fail("POSIX classes like [:alpha:] are not supported")
        self.pos += 1
        return self.char_node(ch)


@dataclass(frozen=True)
class ParsedPattern:
    """A parsed pattern: its top-level alternatives, and whether a quantifier was capped."""

    branches: tuple[PatternBranch, ...]
    capped: bool


def parse_pattern(src: str, cap: int, path: str) -> ParsedPattern:
    """Parse a JSON Schema ``pattern`` (decoded-character trees, one per top-level alternative).

    Unbounded quantifiers (``*``, ``+``, ``{n,}``) are bounded by ``cap`` repetitions.
    """
    parser = _RegexParser(src, cap, path)
    branches = parser.parse()
    return ParsedPattern(tuple(branches), parser.capped)


# --------------------------------------------------------------------------- formats

_D2 = r"[0-9]{2}"
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_MD = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = rf"(?:{_YEAR}-{_MD}|{_LEAP}-02-29)"
_HMS = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_TIME = rf"{_HMS}(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?"
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|{_PCT})"
_QCHAR = rf"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|{_PCT})"

FORMATS: dict[str, tuple[str, str]] = {
    "date": (_DATE, "a calendar date YYYY-MM-DD (leap years exact, year 0001-9999)"),
    "time": (_TIME, "HH:MM:SS[.fraction] with Z or a +HH:MM offset (RFC 3339 full-time)"),
    "date-time": (rf"{_DATE}T{_TIME}", "RFC 3339 date-time with upper-case T and Z"),
    "uuid": (
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "8-4-4-4-12 hex",
    ),
    "email": (
        rf"[A-Za-z0-9_%+-]{{1,32}}(?:\.[A-Za-z0-9_%+-]{{1,32}}){{0,3}}@(?:{_LABEL}\.){{1,4}}[A-Za-z]{{2,24}}",
        "dot-atom local part @ dotted host names with an alphabetic top-level domain (a subset of RFC 5321)",
    ),
    "uri": (
        rf"[A-Za-z][A-Za-z0-9+.-]{{0,15}}://(?:{_LABEL}\.){{0,6}}{_LABEL}(?::[0-9]{{1,5}})?"
        rf"(?:/{_PCHAR}{{0,64}}){{0,12}}(?:\?{_QCHAR}{{0,128}})?(?:#{_QCHAR}{{0,64}})?",
        "scheme://host[:port][/path][?query][#fragment] (a subset of RFC 3986 absolute URIs)",
    ),
}


@functools.cache
def format_json_node(name: str) -> Node:
    """The JSON-string-content grammar of a supported ``format``."""
    return encode_json(format_node(name))


@functools.cache
def format_node(name: str) -> Node:
    """The decoded-character tree for a supported ``format`` (KeyError if unknown)."""
    src, _ = FORMATS[name]
    (branch,) = parse_pattern(src, cap=1, path="$").branches
    return branch.node
