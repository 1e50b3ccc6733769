"""The rule builder: the named GBNF rules of one grammar, their Lark twins, and the bookkeeping.

``RuleBuilder`` holds everything the keyword modules (``schema_types``, ``schema_objects``,
``schema_combinators``, ``schema_keywords``) share while they compile schemas into rules:
rule names and bodies (deduplicated), which rules are lexemes, the validator keywords and notes
collected so far, and the string/array caps. It renders the reachable rules as GBNF or as
llguidance Lark. ``SchemaDoc`` is the per-document ``$ref`` bookkeeping.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeagent.errors import GrammarError
from edgeagent.grammar import numbers
from edgeagent.grammar.charsets import HEX, cs
from edgeagent.grammar.nodes import (
    EMPTY,
    Alt,
    Cls,
    Lit,
    Node,
    Ref,
    Rep,
    Seq,
    alt,
    opt,
    refs_in,
    rep,
    seq,
)
from edgeagent.grammar.regex_gbnf import FORMATS, format_json_node
from edgeagent.grammar.rendering import LarkStyle, render

GLUE_NAMES = frozenset({"root", "call", "calls", "answer"})
BASE_NAMES = frozenset(
    {"start", "value", "object", "member", "array", "string", "char", "number", "integer"}
    | set(FORMATS)
    | GLUE_NAMES
)
TOKEN_BASES = frozenset({"char", "string", "number", "integer"} | set(FORMATS))


@dataclass(frozen=True)
class ValidatorKeyword:
    """A keyword the grammar does not enforce exactly; the validator must check it."""

    keyword: str
    json_path: str
    why: str


@dataclass
class SchemaDoc:
    """One schema document being compiled: its root (for $ref) and its rule-name prefix."""

    root: object
    prefix: str
    refs: dict[str, str] = field(default_factory=dict)
    inlining: list[str] = field(default_factory=list)


# How a keyword module compiles a subschema: (builder, schema, path, doc, hint, depth) -> node.
SubSchema = Callable[["RuleBuilder", object, str, SchemaDoc, str, int], Node]


@functools.lru_cache(maxsize=4096)
def sanitize(name: str) -> str:
    """A rule name made of lowercase letters, digits and dashes, starting with a letter."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"
    return text if text[0].isalpha() else f"n-{text}"


def comma_list(item: Node, lo: int, hi: int) -> Node:
    """``lo``..``hi`` comma-separated items."""
    if hi <= 0:
        return EMPTY
    body = seq(item, rep(seq(Lit(","), item), max(lo - 1, 0), hi - 1))
    return body if lo >= 1 else opt(body)


class RuleBuilder:
    """The rules of one grammar under construction, shared by any number of schemas.

    Rule bodies are deduplicated (identical bodies share one rule), names are made unique,
    shared base rules (``string``, ``value``, formats, ...) are defined on first use. A rule
    whose name maps to ``None`` is still being built (a ``$ref`` target or a schema's root).
    """

    def __init__(
        self, *, string_cap: int = 256, array_cap: int = 64, strict_objects: bool = True
    ) -> None:
        """Empty rules; GrammarError when a cap is below 1."""
        if string_cap < 1 or array_cap < 1:
            raise GrammarError("string_cap and array_cap must be at least 1", keyword=None)
        self.string_cap = string_cap
        self.array_cap = array_cap
        self.strict_objects = strict_objects
        self.rules: dict[str, Node | None] = {}
        self._bodies: dict[tuple[Node, bool], str] = {}
        self._tokens: set[str] = set(TOKEN_BASES)
        self._taken: set[str] = set(BASE_NAMES)
        self._vk: list[ValidatorKeyword] = []
        self._notes: dict[str, list[str]] = {}
        self._checked: dict[int, dict] = {}
        self._maybe_unproductive = False  # set by $ref cycles and empty character classes
        self._layouts: dict[str, tuple[int, dict[str, Node], list[str]]] = {}

    # ------------------------------------------------------------------ naming and adding rules

    def fresh(self, hint: str) -> str:
        """A new unique rule name derived from ``hint`` (now taken)."""
        base = sanitize(hint)
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}-{n}"
        self._taken.add(name)
        return name

    def rule(self, hint: str, body: Node, token: bool = False) -> Ref:
        """A reference to a rule with ``body``: an existing identical rule, or a new one."""
        existing = self._bodies.get((body, token))
        if existing is not None:
            return Ref(existing)
        name = self.fresh(hint)
        self.rules[name] = body
        self._bodies[(body, token)] = name
        if token:
            self._tokens.add(name)
        return Ref(name)

    def named(self, node: Node, hint: str) -> Node:
        """``node`` itself when short (a reference, class or short literal), else a rule for it."""
        if isinstance(node, Ref | Cls) or (isinstance(node, Lit) and len(node.text) <= 40):
            return node
        return self.rule(hint, node)

    def add_rule(self, name: str, body: Node, *, token: bool = False) -> str:
        """Add a glue rule under a reserved name (root, call, calls, answer) or a fresh one.

        ``token`` marks a rule that is a single lexeme (a terminal in the Lark rendering).
        """
        if name not in GLUE_NAMES or self.rules.get(name) is not None:
            name = self.fresh(name)
        self._taken.add(name)
        self.rules[name] = body
        if token:
            self._tokens.add(name)
        return name

    def reserve(self, name: str) -> None:
        """Take ``name`` for a rule whose body is still being built (see ``define``)."""
        self._taken.add(name)
        self.rules[name] = None

    def define(self, name: str, body: Node) -> None:
        """Set the body of a rule taken with ``reserve``."""
        self.rules[name] = body

    def is_pending(self, name: str) -> bool:
        """True while the rule ``name`` has no body yet (it is being built, or unknown)."""
        return self.rules.get(name) is None

    def base(self, name: str) -> Ref:
        """A shared base rule, defined on first use."""
        if self.rules.get(name) is None:
            self.rules[name] = EMPTY  # placeholder against recursion while building
            self.rules[name] = self._base_body(name)
        return Ref(name)

    def _base_body(self, name: str) -> Node:
        """The body of the base rule ``name`` (bounded by the builder's caps)."""
        cap, acap = self.string_cap, self.array_cap
        if name == "char":
            escape = alt(
                Cls(cs('"', "\\", "/", "b", "f", "n", "r", "t")),
                seq(
                    Lit("u"),
                    alt(
                        seq(
                            Cls(cs(("0", "9"), ("a", "c"), ("A", "C"), "e", "f", "E", "F")),
                            rep(HEX, 3, 3),
                        ),
                        seq(Cls(cs("d", "D")), Cls(cs(("0", "7"))), rep(HEX, 2, 2)),
                    ),
                ),
            )
            raw = Cls(cs('"', "\\", (0, 0x1F)), negated=True)
            return alt(raw, seq(Lit("\\"), escape))
        if name == "string":
            return seq(Lit('"'), rep(self.base("char"), 0, cap), Lit('"'))
        if name == "number":
            return numbers.number_literal()
        if name == "integer":
            lo, hi, _ = numbers.capped_range(None, None)
            return numbers.integer_range(lo, hi)
        if name == "value":
            parts = [self.base(n) for n in ("object", "array", "string", "number")]
            return alt(*parts, Lit("true"), Lit("false"), Lit("null"))
        if name == "member":
            return seq(self.base("string"), Lit(":"), self.base("value"))
        if name in ("object", "array"):
            item = self.base("member" if name == "object" else "value")
            open_, close = ("{", "}") if name == "object" else ("[", "]")
            return seq(Lit(open_), comma_list(item, 0, acap), Lit(close))
        if name in FORMATS:
            return seq(Lit('"'), format_json_node(name), Lit('"'))
        raise AssertionError(name)

    # ------------------------------------------------------------------ checks, reports, notes

    def is_checked(self, s: object) -> bool:
        """True when the schema object ``s`` has already passed the keyword checks."""
        return id(s) in self._checked

    def remember_checked(self, s: dict) -> None:
        """Record that ``s`` passed the keyword checks (holding it keeps its id unique)."""
        self._checked[id(s)] = s

    def report(self, keyword: str, path: str, why: str) -> None:
        """Record a keyword the validator (not the grammar) must enforce."""
        self._vk.append(ValidatorKeyword(keyword, path, why))

    def note(self, text: str, path: str | None = None) -> None:
        """Record a deliberate restriction (a cap, strict objects), once per path."""
        paths = self._notes.setdefault(text, [])
        if path is not None and path not in paths:
            paths.append(path)

    def mark_unproductive(self) -> None:
        """Some rule may never finish ($ref cycle, empty class): prune before rendering."""
        self._maybe_unproductive = True

    @property
    def validator_keywords(self) -> tuple[ValidatorKeyword, ...]:
        """Every keyword reported so far, without repeats, in order."""
        return tuple(dict.fromkeys(self._vk))

    @property
    def notes(self) -> tuple[str, ...]:
        """Every note so far, each with (up to five of) the paths it applies to."""
        out = []
        for text, paths in self._notes.items():
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            out.append(f"{text} (at {shown})" if paths else text)
        return tuple(out)

    def mark(self) -> int:
        """Position in the validator keyword list (to slice one schema's keywords out)."""
        return len(self._vk)

    def keywords_since(self, mark: int) -> tuple[ValidatorKeyword, ...]:
        """The keywords reported since ``mark``, without repeats."""
        return tuple(dict.fromkeys(self._vk[mark:]))

    # ------------------------------------------------------------------ rendering

    def gbnf(self, root: str) -> str:
        """GBNF text: ``root ::= ...`` first, then every reachable rule; no unused rules."""
        bodies, order = self._layout(root)
        lines = [f"{name} ::= {render(bodies[name])}" for name in order]
        if root != "root":
            lines.insert(0, f"root ::= {root}")
        return "\n".join(lines) + "\n"

    def lark(self, root: str) -> str:
        """The same grammar in llguidance's Lark syntax, lexed as JSON tokens.

        llguidance lexes greedily; ``gbnf_to_lark`` turns every all-terminal GBNF rule into
        one big lexeme, which can then shadow a shorter lexeme of a recursive rule and reject
        valid text. Here only JSON scalars (strings, numbers, formats, patterns, the plain
        answer) are terminals and literals are split into JSON tokens; compact JSON tokens are
        never a prefix of what may follow them, so greedy lexing stays exact.
        """
        bodies, order = self._layout(root)
        names = {}
        for name in order:
            lark_name = name.replace("-", "_")
            names[name] = lark_name.upper() if name in self._tokens else lark_name
        names[root] = "start"
        lines = ["%llguidance {}", ""]
        for name in order:
            style = LarkStyle(name in self._tokens, names)
            lines.append(f"{names[name]}: {render(bodies[name], lark=style)}")
        return "\n".join(lines) + "\n"

    def _layout(self, root: str) -> tuple[dict[str, Node], list[str]]:
        """The pruned rule bodies and the rules reachable from ``root``, in first-use order."""
        cached = self._layouts.get(root)
        if cached is not None and cached[0] == len(self.rules):
            return cached[1], cached[2]
        bodies = self._pruned()
        if root not in bodies:
            raise GrammarError(
                "the schema admits no finite JSON value (every alternative recurses forever)",
                keyword="$ref",
                path="$",
                hint="give recursive definitions a non-recursive alternative",
            )
        order = [root]
        seen = {root}
        i = 0
        while i < len(order):
            for ref in refs_in(bodies[order[i]]):
                if ref not in seen:
                    seen.add(ref)
                    order.append(ref)
            i += 1
        self._layouts[root] = (len(self.rules), bodies, order)
        return bodies, order

    def _pruned(self) -> dict[str, Node]:
        """Rule bodies without alternatives that can never finish (unproductive recursion)."""
        bodies = {k: v for k, v in self.rules.items() if v is not None}
        if not self._maybe_unproductive:
            return bodies  # no $ref cycle and no empty class: every rule can finish
        productive: set[str] = set()
        memo: dict[int, bool] = {}

        def ok(node: Node) -> bool:
            """True when ``node`` can finish, given the rules known to be productive."""
            if isinstance(node, Lit):
                return True
            if isinstance(node, Cls):
                return bool(node.ranges) or node.negated
            if isinstance(node, Ref):
                return node.name in productive
            known = memo.get(id(node))
            if known:
                return True
            if isinstance(node, Seq):
                result = all(ok(i) for i in node.items)
            elif isinstance(node, Alt):
                result = any(ok(i) for i in node.items)
            else:
                result = node.lo == 0 or ok(node.node)  # type: ignore[union-attr]
            if result:
                memo[id(node)] = True  # only True is stable while `productive` grows
            return result

        changed = True
        while changed:
            changed = False
            for name, body in reversed(bodies.items()):  # rules mostly refer to later ones
                if name not in productive and ok(body):
                    productive.add(name)
                    changed = True
        dropped = sorted(set(bodies) - productive)
        if dropped:
            self.note(
                f"rule(s) {', '.join(dropped)} can never finish (a $ref cycle without a base "
                "case, or an empty character class): no value can match them, so the grammar "
                "leaves them out"
            )
        final: dict[int, bool] = {}

        def ok_final(node: Node) -> bool:
            """``ok`` once every productive rule is known (memoized)."""
            key = id(node)
            if key not in final:
                final[key] = ok(node)
            return final[key]

        def prune(node: Node) -> Node:
            """``node`` without the alternatives and repetitions that cannot finish."""
            if isinstance(node, Seq | Alt):
                items = [prune(i) for i in node.items if isinstance(node, Seq) or ok_final(i)]
                if len(items) == len(node.items) and all(
                    a is b for a, b in zip(items, node.items, strict=True)
                ):
                    return node
                if isinstance(node, Alt):
                    return items[0] if len(items) == 1 else Alt(tuple(items))
                return Seq(tuple(items))
            if isinstance(node, Rep):
                if not ok_final(node.node):
                    return EMPTY
                inner = prune(node.node)
                return node if inner is node.node else Rep(inner, node.lo, node.hi)
            return node

        return {k: prune(v) for k, v in bodies.items() if k in productive}
