"""The grammar AST: ``Lit``/``Cls``/``Ref``/``Seq``/``Alt``/``Rep`` nodes and their builders.

The compiler builds grammars as trees of these nodes and renders them once at the end (see
``rendering``). The builders ``seq``/``alt``/``rep``/``opt`` simplify as they go, so equal
languages built the same way give equal trees (the compiler dedupes rules by body).
"""

from __future__ import annotations

from typing import NamedTuple

Ranges = tuple[tuple[int, int], ...]  # sorted, merged, inclusive code point ranges


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
