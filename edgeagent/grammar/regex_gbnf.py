"""The documented JSON Schema ``pattern`` subset and the supported ``format`` values.

``parse_pattern`` parses an ECMA-262 pattern (the subset in ``grammars/README.md``) into a
grammar tree over decoded characters; ``format_node`` does the same for each ``format``, whose
regex is defined here. ``charsets.encode_json`` turns such trees into JSON-string content.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from edgeagent.errors import GrammarError
from edgeagent.grammar.charsets import (
    LINE_TERMINATORS,
    SURROGATES,
    complement,
    cs,
    encode_json,
    escape_set,
    union,
)
from edgeagent.grammar.nodes import Cls, Lit, Node, Ranges, alt, rep, seq


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
                acc.append(cs((a, b)))
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
