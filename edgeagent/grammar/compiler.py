"""JSON Schema -> GBNF: exact where the grammar can be, loud where it cannot.

Every keyword is either expressed in the grammar, enforced by the validator and reported in
``CompiledGrammar.validator_keywords``, a documented annotation, or refused with a
``GrammarError`` naming the keyword and its JSON path. Nothing is dropped silently.
The supported subset and its exact semantics are documented in ``grammars/README.md``.
"""

from __future__ import annotations

import functools
import json
import re
from collections import OrderedDict
from dataclasses import dataclass

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
from edgeagent.grammar.schema_combinators import CombinatorMixin, SchemaDoc
from edgeagent.grammar.schema_keywords import KeywordCheckMixin, type_list
from edgeagent.grammar.schema_types import TypeRulesMixin

__all__ = [
    "CompiledGrammar",
    "SchemaCompiler",
    "ValidatorKeyword",
    "compile_schema",
    "describe_validator_keywords",
    "lark_for",
]

MAX_DEPTH = 200
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


@dataclass(frozen=True)
class CompiledGrammar:
    """A complete GBNF grammar (with a ``root`` rule) for one schema.

    ``root`` names the rule of the schema itself; ``validator_keywords`` lists what the
    validator must still check; ``notes`` lists deliberate restrictions (caps, strict objects).
    ``lark`` is the same language for llguidance (use it rather than ``gbnf_to_lark(gbnf)``,
    see ``SchemaCompiler.lark``).
    """

    gbnf: str
    root: str
    validator_keywords: tuple[ValidatorKeyword, ...]
    notes: tuple[str, ...]
    lark: str


def describe_validator_keywords(compiled: CompiledGrammar) -> list[str]:
    """Lines for stderr, one per keyword the validator (not the grammar) enforces."""
    return [
        f"note: {vk.keyword} at {vk.json_path} is enforced by the validator, not the grammar"
        f" ({vk.why})"
        for vk in compiled.validator_keywords
    ]


@functools.lru_cache(maxsize=4096)
def _sanitize(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"
    return text if text[0].isalpha() else f"n-{text}"


class SchemaCompiler(KeywordCheckMixin, CombinatorMixin, TypeRulesMixin):
    """Compiles one or more JSON schemas into a single grammar with shared base rules.

    ``compile`` returns the rule name of each schema; ``grammar`` renders every rule reachable
    from a root. Rule names are deduplicated (identical bodies share one rule) and prefixed per
    schema, so an envelope can hold many tools' argument grammars at once. Keyword checks,
    ``$ref``/combinators and typed-value rules come from the mixins in ``schema_keywords``,
    ``schema_combinators`` and ``schema_types``; this class holds the rules and renders them.
    """

    def __init__(
        self, *, string_cap: int = 256, array_cap: int = 64, strict_objects: bool = True
    ) -> None:
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

    # ------------------------------------------------------------------ public

    def compile(self, schema: object, *, name: str = "root", require_object: bool = False) -> str:
        """Add ``schema``'s rules; returns the name of its top rule (``name`` sanitized)."""
        prefix = "root" if name == "root" else self._fresh(name)
        doc = SchemaDoc(root=schema, prefix=prefix)
        self._taken.add(prefix)
        self.rules[prefix] = None
        try:
            if require_object:
                target = self._object_root(schema, doc)
            else:
                target = schema
                doc.refs["#"] = prefix
            self.rules[prefix] = self._schema(target, "$", doc, prefix, 0)
        except RecursionError:
            raise GrammarError(
                "the schema is nested too deeply to compile", keyword=None, path="$"
            ) from None
        return prefix

    def add_rule(self, name: str, body: Node, *, token: bool = False) -> str:
        """Add a glue rule under a reserved name (root, call, calls, answer) or a fresh one.

        ``token`` marks a rule that is a single lexeme (a terminal in the Lark rendering).
        """
        if name not in GLUE_NAMES or self.rules.get(name) is not None:
            name = self._fresh(name)
        self._taken.add(name)
        self.rules[name] = body
        if token:
            self._tokens.add(name)
        return name

    @property
    def validator_keywords(self) -> tuple[ValidatorKeyword, ...]:
        return tuple(dict.fromkeys(self._vk))

    @property
    def notes(self) -> tuple[str, ...]:
        out = []
        for text, paths in self._notes.items():
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            out.append(f"{text} (at {shown})" if paths else text)
        return tuple(out)

    def mark(self) -> int:
        """Position in the validator keyword list (to slice one schema's keywords out)."""
        return len(self._vk)

    def keywords_since(self, mark: int) -> tuple[ValidatorKeyword, ...]:
        return tuple(dict.fromkeys(self._vk[mark:]))

    def grammar(self, root: str) -> str:
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

    def render(self, root: str) -> tuple[str, str]:
        """(GBNF, Lark) for ``root``; the pair is registered for ``lark_for``."""
        gbnf, lark = self.grammar(root), self.lark(root)
        _LARK_BY_GBNF[gbnf] = lark
        _LARK_BY_GBNF.move_to_end(gbnf)
        while len(_LARK_BY_GBNF) > _LARK_REGISTRY_SIZE:
            _LARK_BY_GBNF.popitem(last=False)
        return gbnf, lark

    def result(self, root: str) -> CompiledGrammar:
        gbnf, lark = self.render(root)
        return CompiledGrammar(gbnf, root, self.validator_keywords, self.notes, lark)

    # ------------------------------------------------------------------ bookkeeping

    def _fresh(self, hint: str) -> str:
        base = _sanitize(hint)
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}-{n}"
        self._taken.add(name)
        return name

    def _rule(self, hint: str, body: Node, token: bool = False) -> Ref:
        existing = self._bodies.get((body, token))
        if existing is not None:
            return Ref(existing)
        name = self._fresh(hint)
        self.rules[name] = body
        self._bodies[(body, token)] = name
        if token:
            self._tokens.add(name)
        return Ref(name)

    def _named(self, node: Node, hint: str) -> Node:
        if isinstance(node, Ref | Cls) or (isinstance(node, Lit) and len(node.text) <= 40):
            return node
        return self._rule(hint, node)

    def _report(self, keyword: str, path: str, why: str) -> None:
        self._vk.append(ValidatorKeyword(keyword, path, why))

    def _note(self, text: str, path: str | None = None) -> None:
        paths = self._notes.setdefault(text, [])
        if path is not None and path not in paths:
            paths.append(path)

    def _base(self, name: str) -> Ref:
        """A shared base rule, defined on first use."""
        if self.rules.get(name) is None:
            self.rules[name] = EMPTY  # placeholder against recursion while building
            self.rules[name] = self._base_body(name)
        return Ref(name)

    def _base_body(self, name: str) -> Node:
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
            return seq(Lit('"'), rep(self._base("char"), 0, cap), Lit('"'))
        if name == "number":
            return numbers.number_literal()
        if name == "integer":
            lo, hi, _ = numbers.capped_range(None, None)
            return numbers.integer_range(lo, hi)
        if name == "value":
            parts = [self._base(n) for n in ("object", "array", "string", "number")]
            return alt(*parts, Lit("true"), Lit("false"), Lit("null"))
        if name == "member":
            return seq(self._base("string"), Lit(":"), self._base("value"))
        if name in ("object", "array"):
            item = self._base("member" if name == "object" else "value")
            open_, close = ("{", "}") if name == "object" else ("[", "]")
            return seq(Lit(open_), self._list(item, 0, acap), Lit(close))
        if name in FORMATS:
            return seq(Lit('"'), format_json_node(name), Lit('"'))
        raise AssertionError(name)

    @staticmethod
    def _list(item: Node, lo: int, hi: int) -> Node:
        """``lo``..``hi`` comma-separated items."""
        if hi <= 0:
            return EMPTY
        body = seq(item, rep(seq(Lit(","), item), max(lo - 1, 0), hi - 1))
        return body if lo >= 1 else opt(body)

    def _pruned(self) -> dict[str, Node]:
        """Rule bodies without alternatives that can never finish (unproductive recursion)."""
        bodies = {k: v for k, v in self.rules.items() if v is not None}
        if not self._maybe_unproductive:
            return bodies  # no $ref cycle and no empty class: every rule can finish
        productive: set[str] = set()
        memo: dict[int, bool] = {}

        def ok(node: Node) -> bool:
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
            self._note(
                f"rule(s) {', '.join(dropped)} can never finish (a $ref cycle without a base "
                "case, or an empty character class): no value can match them, so the grammar "
                "leaves them out"
            )
        final: dict[int, bool] = {}

        def ok_final(node: Node) -> bool:
            key = id(node)
            if key not in final:
                final[key] = ok(node)
            return final[key]

        def prune(node: Node) -> Node:
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

    # ------------------------------------------------------------------ schemas

    def _schema(self, s: object, path: str, doc: SchemaDoc, hint: str, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise GrammarError(
                "the schema is nested too deeply to compile", keyword=None, path=path
            )
        if s is True:
            return self._any(path)
        if s is False:
            raise GrammarError(
                "the schema `false` matches nothing", keyword=None, path=path,
                hint="remove the branch or property that uses it",
            )  # fmt: skip
        s = self._check(s, path)
        if not self._constraints(s):
            return self._any(path)
        if "allOf" in s or ("$ref" in s and self._constraints(s, {"$ref"})):
            merged, inlined = self._merge_list([s], path, doc)
            doc.inlining.extend(inlined)
            try:
                return self._schema(merged, path, doc, hint, depth + 1)
            finally:
                del doc.inlining[len(doc.inlining) - len(inlined) :]
        if "$ref" in s:
            return self._ref(s["$ref"], path, doc, depth)
        if "anyOf" in s or "oneOf" in s:
            return self._combinators(s, path, doc, hint, depth)
        if "enum" in s or "const" in s:
            return self._enum(s, path)
        return self._typed(s, path, doc, hint, depth)

    def _any(self, path: str) -> Node:
        self._note(
            f"free JSON values are bounded: strings <= {self.string_cap} characters, arrays and "
            f"objects <= {self.array_cap} members, numbers <= {numbers.INT_PART_DIGITS} integer digits",
            path,
        )
        return self._base("value")

    def _object_root(self, schema: object, doc: SchemaDoc) -> object:
        """The tool-parameter root: the schema intersected with ``{"type": "object"}``."""
        if schema is True:
            return {"type": "object"}
        if schema is False:
            raise GrammarError("the schema `false` matches nothing", keyword=None, path="$")
        s = self._check(schema, "$")
        if "type" in s and "object" not in type_list(s["type"]):
            raise GrammarError(
                "tool parameters must be a JSON object schema",
                keyword="type",
                path="$",
                hint='use {"type": "object", "properties": {...}}',
            )
        merged, _ = self._merge_list([{"type": "object"}, s], "$", doc)
        return merged


_LARK_REGISTRY_SIZE = 2048  # more than the compile and envelope caches hold together
_LARK_BY_GBNF: OrderedDict[str, str] = OrderedDict()


MAX_SCHEMA_DEPTH = 64


def lark_for(gbnf: str) -> str | None:
    """The exact llguidance Lark for GBNF text this compiler produced in this process, or None.

    Engines that take GBNF text should prefer it to ``llguidance.gbnf_to_lark``, whose greedy
    whole-rule lexemes can reject valid text (see ``SchemaCompiler.lark``).
    """
    return _LARK_BY_GBNF.get(gbnf)


def compile_schema(
    schema: object,
    *,
    string_cap: int = 256,
    name: str = "root",
    array_cap: int = 64,
    strict_objects: bool = True,
) -> CompiledGrammar:
    """Compile one JSON schema to a complete GBNF grammar (cached by the schema's JSON text).

    Raises only ``GrammarError`` (with ``keyword`` and JSONPath ``path``) for anything it cannot
    honour. ``strict_objects`` treats an absent ``additionalProperties`` as false on objects that
    list properties (tool arguments should not grow invented keys); this is reported in notes.
    """
    try:
        key = json.dumps(schema, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GrammarError(f"the schema is not JSON: {exc}", keyword=None, path="$") from None
    except RecursionError:
        raise GrammarError("the schema is nested too deeply", keyword=None, path="$") from None
    check_schema_depth(schema, "the schema")
    return _compile_cached(key, string_cap, name, array_cap, strict_objects)


def check_schema_depth(schema: object, what: str) -> None:
    """Refuse a schema nested deeper than MAX_SCHEMA_DEPTH JSON levels (GrammarError)."""
    from edgeagent.inputs import json_depth

    if json_depth(schema) > MAX_SCHEMA_DEPTH:
        raise GrammarError(
            f"{what} is nested more than {MAX_SCHEMA_DEPTH} levels deep",
            keyword=None,
            path="$",
            hint="flatten it; tool arguments need only a few levels",
        )


@functools.lru_cache(maxsize=512)
def _compile_cached(
    key: str, string_cap: int, name: str, array_cap: int, strict_objects: bool
) -> CompiledGrammar:
    try:
        schema = json.loads(key)
    except RecursionError:
        raise GrammarError("the schema is nested too deeply", keyword=None, path="$") from None
    compiler = SchemaCompiler(
        string_cap=string_cap, array_cap=array_cap, strict_objects=strict_objects
    )
    root = compiler.compile(schema, name=name)
    return compiler.result(root)
