"""Grammar for JSON numbers: exact integer ranges as digit rules, and the bounded number literal."""

from __future__ import annotations

import math
from fractions import Fraction

from edgeagent.grammar.charsets import cs
from edgeagent.grammar.nodes import Cls, Lit, Node, alt, opt, rep, seq

INT_DIGITS = 19  # integers without a bound on a side are capped at this many digits
INT_PART_DIGITS = 16  # number literal: at most this many integer digits ...
FRAC_DIGITS = 20  # ... fraction digits (Python's float repr needs up to 20) ...
EXP_DIGITS = 2  # ... and exponent digits (so every literal is a finite double)

DIGIT = Cls(cs(("0", "9")))
NONZERO = Cls(cs(("1", "9")))


def _digit_class(lo: str, hi: str) -> Node:
    return Lit(lo) if lo == hi else Cls(cs((lo, hi)))


def _same_length(x: str, y: str) -> Node:
    """Digit strings of len(x) == len(y) between x and y inclusive (leading zeros allowed)."""
    if x == y:
        return Lit(x)
    if len(x) == 1:
        return _digit_class(x, y)
    if x[0] == y[0]:
        return seq(Lit(x[0]), _same_length(x[1:], y[1:]))
    n = len(x) - 1
    low_full = x[1:] == "0" * n
    high_full = y[1:] == "9" * n
    parts: list[Node] = []
    first = x[0] if low_full else chr(ord(x[0]) + 1)
    last = y[0] if high_full else chr(ord(y[0]) - 1)
    if not low_full:
        parts.append(seq(Lit(x[0]), _same_length(x[1:], "9" * n)))
    if first <= last:
        parts.append(seq(_digit_class(first, last), rep(DIGIT, n, n)))
    if not high_full:
        parts.append(seq(Lit(y[0]), _same_length("0" * n, y[1:])))
    return alt(*parts)


def _nonnegative(a: int, b: int) -> Node:
    """Decimal integers in [a, b] without leading zeros, 0 <= a <= b."""
    parts: list[Node] = []
    if a == 0:
        parts.append(Lit("0"))
        a = 1
    full_from: int | None = None  # digit count where a run of complete lengths started
    digits = len(str(a))
    while a <= b:
        top = 10**digits - 1
        if a == 10 ** (digits - 1) and b >= top:
            full_from = digits if full_from is None else full_from
        else:
            if full_from is not None:
                parts.append(seq(NONZERO, rep(DIGIT, full_from - 1, digits - 2)))
                full_from = None
            hi = min(b, top)
            parts.append(_same_length(str(a), str(hi)))
        a = min(b, top) + 1
        digits += 1
        if a > b:
            break
    if full_from is not None:
        parts.append(seq(NONZERO, rep(DIGIT, full_from - 1, digits - 2)))
    return alt(*parts)


def integer_range(lo: int, hi: int) -> Node:
    """Exactly the canonical decimal integers in [lo, hi] (no leading zeros, no ``-0``)."""
    if lo > hi:
        raise ValueError("empty integer range")
    if lo >= 0:
        return _nonnegative(lo, hi)
    if hi < 0:
        return seq(Lit("-"), _nonnegative(-hi, -lo))
    return alt(seq(Lit("-"), _nonnegative(1, -lo)), _nonnegative(0, hi))


def integer_bounds(
    minimum: object, maximum: object, exclusive_min: object, exclusive_max: object
) -> tuple[int | None, int | None]:
    """Inclusive integer bounds from JSON Schema numeric keywords (None: unbounded)."""
    lo: int | None = None
    hi: int | None = None
    for value, exclusive in ((minimum, False), (exclusive_min, True)):
        if value is None:
            continue
        exact = Fraction(value)  # type: ignore[arg-type]
        bound = math.floor(exact) + 1 if exclusive else math.ceil(exact)
        lo = bound if lo is None else max(lo, bound)
    for value, exclusive in ((maximum, False), (exclusive_max, True)):
        if value is None:
            continue
        exact = Fraction(value)  # type: ignore[arg-type]
        bound = math.ceil(exact) - 1 if exclusive else math.floor(exact)
        hi = bound if hi is None else min(hi, bound)
    return lo, hi


def capped_range(lo: int | None, hi: int | None) -> tuple[int, int, bool]:
    """Fill unbounded sides with the INT_DIGITS cap; returns (lo, hi, capped)."""
    capped = lo is None or hi is None
    if hi is None:
        width = max(INT_DIGITS, len(str(abs(lo))) if lo is not None else 0)
        hi = 10**width - 1
    if lo is None:
        width = max(INT_DIGITS, len(str(abs(hi))))
        lo = -(10**width - 1)
    return lo, hi, capped


def number_literal() -> Node:
    """A JSON number with bounded digit counts (never overflows a double)."""
    int_part = alt(Lit("0"), seq(NONZERO, rep(DIGIT, 0, INT_PART_DIGITS - 1)))
    frac = opt(seq(Lit("."), rep(DIGIT, 1, FRAC_DIGITS)))
    exp = opt(seq(Cls(cs("e", "E")), opt(Cls(cs("-", "+"))), rep(DIGIT, 1, EXP_DIGITS)))
    return seq(opt(Lit("-")), int_part, frac, exp)
