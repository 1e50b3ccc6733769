"""JSON Schema -> GBNF: exact where the grammar can be, loud where it cannot.

Every keyword is either expressed in the grammar, enforced by the validator and reported in
``CompiledGrammar.validator_keywords``, a documented annotation, or refused with a
``GrammarError`` naming the keyword and its JSON path. Nothing is dropped silently.
The supported subset and its exact semantics are documented in ``grammars/README.md``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import product
from urllib.parse import unquote

from edgeagent.errors import GrammarError
from edgeagent.grammar import numbers
from edgeagent.grammar.regex_gbnf import (
    EMPTY,
    FORMATS,
    HEX,
    Alt,
    Cls,
    LarkStyle,
    Lit,
    Node,
    Ref,
    Rep,
    Seq,
    alt,
    cs,
    encode_json,
    format_json_node,
    format_node,
    has_empty_class,
    json_text,
    length_bounds,
    opt,
    parse_pattern,
    refs_in,
    render,
    rep,
    seq,
)

__all__ = [
    "CompiledGrammar",
    "SchemaCompiler",
    "ValidatorKeyword",
    "compile_schema",
    "describe_validator_keywords",
    "lark_for",
]

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
ALL_TYPES = ("object", "array", "string", "number", "boolean", "null")  # number covers integer
ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "$anchor",
        "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
        "contentSchema", "discriminator",
    }
)  # fmt: skip
CONTAINERS = frozenset({"$defs", "definitions"})
STRING_KW = frozenset({"minLength", "maxLength", "pattern", "format"})
NUMBER_KW = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
OBJECT_KW = frozenset(
    {"properties", "required", "additionalProperties", "minProperties", "maxProperties"}
)
ARRAY_KW = frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems"})
COMBINATORS = frozenset({"anyOf", "oneOf", "allOf", "$ref"})
VALUE_KW = frozenset({"type", "enum", "const"})
SUPPORTED = STRING_KW | NUMBER_KW | OBJECT_KW | ARRAY_KW | COMBINATORS | VALUE_KW
KNOWN = SUPPORTED | ANNOTATIONS | CONTAINERS
UNSUPPORTED_HINTS = {
    "not": "rewrite without 'not' (e.g. an enum of the allowed values)",
    "if": "express the condition with anyOf branches",
    "then": "express the condition with anyOf branches",
    "else": "express the condition with anyOf branches",
    "patternProperties": "list the properties explicitly or use additionalProperties",
    "nullable": 'OpenAPI \'nullable\' is not JSON Schema: use "type": [..., "null"]',
    "items": "array-form 'items' is pre-2020 JSON Schema: use prefixItems",
}
MAX_DEPTH = 200
MAX_BOUND = 10000  # largest length/count bound put into a grammar (llama.cpp unrolls bounds)
MAX_BRANCHES = 64
GLUE_NAMES = frozenset({"root", "call", "calls", "answer"})
BASE_NAMES = frozenset(
    {"start", "value", "object", "member", "array", "string", "char", "number", "integer"}
    | set(FORMATS)
    | GLUE_NAMES
)
TOKEN_BASES = frozenset({"char", "string", "number", "integer"} | set(FORMATS))
MAX_INLINE = 16  # a $ref merged into its own expansion more often than this is infinite


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


_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def jp(path: str, *keys: str | int) -> str:
    """Extend a JSONPath with member names and indices."""
    for key in keys:
        if isinstance(key, int):
            path += f"[{key}]"
        elif _IDENT.match(key):
            path += f".{key}"
        else:
            path += "[" + json.dumps(key, ensure_ascii=False) + "]"
    return path


@functools.lru_cache(maxsize=4096)
def _sanitize(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"
    return text if text[0].isalpha() else f"n-{text}"


def _is_int(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


def _is_num(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _value_key(value: object) -> str:
    """A key under which JSON Schema-equal values (1 == 1.0, key order) compare equal."""

    def norm(v: object) -> object:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return ["__list__", *(norm(i) for i in v)]
        if isinstance(v, dict):
            return {k: norm(i) for k, i in v.items()}
        return v

    return json.dumps(norm(value), sort_keys=True)


def _expand_types(types: Iterable[str]) -> set[str]:
    out = set(types)
    if "number" in out:
        out.add("integer")
    return out


def _type_list(value: object) -> list[str]:
    return [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]


@functools.cache
def _format_bounds(name: str) -> tuple[int, int | None]:
    return length_bounds(format_node(name))


class _Missing:
    pass


MISSING = _Missing()


@dataclass
class _Doc:
    """One schema document being compiled: its root (for $ref) and its rule-name prefix."""

    root: object
    prefix: str
    refs: dict[str, str] = field(default_factory=dict)
    inlining: list[str] = field(default_factory=list)


class SchemaCompiler:
    """Compiles one or more JSON schemas into a single grammar with shared base rules.

    ``compile`` returns the rule name of each schema; ``grammar`` renders every rule reachable
    from a root. Rule names are deduplicated (identical bodies share one rule) and prefixed per
    schema, so an envelope can hold many tools' argument grammars at once.
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
        doc = _Doc(root=schema, prefix=prefix)
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

    def _bound(self, s: dict, key: str, path: str) -> int | None:
        """A length/count keyword; upper bounds above MAX_BOUND are lowered to it (noted)."""
        if key not in s:
            return None
        value = int(s[key])
        if value <= MAX_BOUND:
            return value
        if key.startswith("min"):
            raise GrammarError(
                f"{key} {value} is above the grammar limit of {MAX_BOUND}",
                keyword=key,
                path=path,
                hint="lower it; a model should not be asked for that much structured output",
            )
        self._note(f"{key} above {MAX_BOUND} is lowered to {MAX_BOUND} in the grammar", path)
        return MAX_BOUND

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

    # ------------------------------------------------------------------ checking

    def _check(self, s: object, path: str) -> dict:
        """Validate a schema object's keywords and their values; returns it as a dict."""
        if id(s) in self._checked:
            return s  # type: ignore[return-value]
        if not isinstance(s, dict):
            raise GrammarError(
                f"a schema must be an object or a boolean, got {type(s).__name__}",
                keyword=None,
                path=path,
            )
        for key, value in s.items():
            if not isinstance(key, str):
                raise GrammarError("schema keys must be strings", keyword=str(key), path=path)
            if key not in KNOWN:
                raise GrammarError(
                    f"unsupported keyword {key!r}",
                    keyword=key,
                    path=path,
                    hint=UNSUPPORTED_HINTS.get(
                        key, "remove it, or see grammars/README.md for the supported subset"
                    ),
                )
            self._check_value(key, value, path)
        self._checked[id(s)] = s  # holding the dict keeps its id from being reused
        return s

    def _check_value(self, key: str, value: object, path: str) -> None:
        def bad(expect: str, hint: str | None = None) -> GrammarError:
            return GrammarError(
                f"{key} must be {expect}, got {json.dumps(value, default=str)[:60]}",
                keyword=key,
                path=path,
                hint=hint,
            )

        schema_like = (dict, bool)
        if key == "type":
            types = _type_list(value) if isinstance(value, str | list) else None
            if not types or any(t not in TYPES for t in types) or len(set(types)) != len(types):
                raise bad(f"one of {', '.join(TYPES)} or a list of them without repeats")
        elif key == "enum":
            if not isinstance(value, list) or not value:
                raise bad("a non-empty array")
        elif key in ("properties", "$defs", "definitions"):
            if not isinstance(value, dict) or not all(
                isinstance(v, schema_like) for v in value.values()
            ):
                raise bad("an object whose values are schemas")
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad("an array of strings")
        elif key in ("additionalProperties", "items"):
            if isinstance(value, list) and key == "items":
                raise bad("a schema", UNSUPPORTED_HINTS["items"])
            if not isinstance(value, schema_like):
                raise bad("a schema")
        elif key in ("prefixItems", "anyOf", "oneOf", "allOf"):
            if not isinstance(value, list) or not value:
                raise bad("a non-empty array of schemas")
            if not all(isinstance(v, schema_like) for v in value):
                raise bad("a non-empty array of schemas")
        elif key in (
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
        ):
            if not _is_int(value) or value < 0:  # type: ignore[operator]
                raise bad("a non-negative integer")
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _is_num(value):
                hint = (
                    "draft-4 boolean exclusiveMinimum/Maximum: use a number"
                    if isinstance(value, bool)
                    else None
                )
                raise bad("a finite number", hint)
        elif key == "multipleOf":
            if not _is_num(value) or value <= 0:  # type: ignore[operator]
                raise bad("a number above 0")
        elif key in ("pattern", "format", "$ref", "$schema", "$comment", "$anchor"):
            if not isinstance(value, str):
                raise bad("a string")
        elif key == "uniqueItems":
            if not isinstance(value, bool):
                raise bad("a boolean")
        elif key == "$id" and path != "$":
            raise GrammarError(
                "$id below the root (an embedded schema resource) is not supported",
                keyword="$id",
                path=path,
                hint="move the definition under $defs of the root schema",
            )

    # ------------------------------------------------------------------ schemas

    def _schema(self, s: object, path: str, doc: _Doc, hint: str, depth: int) -> Node:
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

    @staticmethod
    def _constraints(s: dict, exclude: Iterable[str] = ()) -> dict:
        skip = ANNOTATIONS | CONTAINERS | set(exclude)
        return {k: v for k, v in s.items() if k not in skip}

    def _any(self, path: str) -> Node:
        self._note(
            f"free JSON values are bounded: strings <= {self.string_cap} characters, arrays and "
            f"objects <= {self.array_cap} members, numbers <= {numbers.INT_PART_DIGITS} integer digits",
            path,
        )
        return self._base("value")

    def _object_root(self, schema: object, doc: _Doc) -> object:
        """The tool-parameter root: the schema intersected with ``{"type": "object"}``."""
        if schema is True:
            return {"type": "object"}
        if schema is False:
            raise GrammarError("the schema `false` matches nothing", keyword=None, path="$")
        s = self._check(schema, "$")
        if "type" in s and "object" not in _type_list(s["type"]):
            raise GrammarError(
                "tool parameters must be a JSON object schema",
                keyword="type",
                path="$",
                hint='use {"type": "object", "properties": {...}}',
            )
        merged, _ = self._merge_list([{"type": "object"}, s], "$", doc)
        return merged

    # ------------------------------------------------------------------ $ref

    @staticmethod
    def _pointer(ref: object, path: str) -> str:
        if not isinstance(ref, str):
            raise GrammarError("$ref must be a string", keyword="$ref", path=path)
        if ref == "#" or ref.startswith("#/"):
            return ref
        if ref.startswith("#"):
            raise GrammarError(
                f"$ref {ref!r}: anchor references are not supported",
                keyword="$ref",
                path=path,
                hint="refer to definitions by JSON pointer, e.g. #/$defs/Name",
            )
        raise GrammarError(
            f"$ref {ref!r}: only references inside the schema (#/...) are supported",
            keyword="$ref",
            path=path,
            hint="inline the remote schema under $defs",
        )

    @staticmethod
    def _resolve(ptr: str, doc: _Doc, path: str) -> tuple[object, str]:
        node: object = doc.root
        tpath = "$"
        if ptr == "#":
            return node, tpath
        for raw in ptr[2:].split("/"):
            seg = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and seg in node:
                node = node[seg]
                tpath = jp(tpath, seg)
            elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
                node = node[int(seg)]
                tpath = jp(tpath, int(seg))
            else:
                raise GrammarError(
                    f"$ref {ptr!r} does not resolve inside the schema",
                    keyword="$ref",
                    path=path,
                )
        return node, tpath

    def _ref(self, ref: object, path: str, doc: _Doc, depth: int) -> Node:
        ptr = self._pointer(ref, path)
        if ptr in doc.refs:
            if self.rules.get(doc.refs[ptr]) is None:
                self._maybe_unproductive = True  # a reference cycle
            return Ref(doc.refs[ptr])
        target, tpath = self._resolve(ptr, doc, path)
        last = ptr.rsplit("/", 1)[-1] if ptr != "#" else "self"
        name = self._fresh(f"{doc.prefix}-{unquote(last)}")
        doc.refs[ptr] = name
        self.rules[name] = None
        self.rules[name] = self._schema(target, tpath, doc, name, depth + 1)
        return Ref(name)

    # ------------------------------------------------------------------ allOf merging

    def _merge_list(self, schemas: list, path: str, doc: _Doc) -> tuple[dict, list[str]]:
        parts: list[dict] = []
        inlined: list[str] = []
        for s in schemas:
            self._flatten(s, path, doc, parts, (), inlined)
        merged: dict = {}
        for part in parts:
            merged = self._merge2(merged, part, path)
        return merged, inlined

    def _flatten(
        self, s: object, path: str, doc: _Doc, out: list[dict], chain: tuple, inlined: list[str]
    ) -> None:
        if s is True:
            return
        if s is False:
            raise GrammarError(
                "allOf contains the schema `false`: nothing can match", keyword="allOf", path=path
            )
        s = self._check(s, path)
        if "$ref" in s:
            ptr = self._pointer(s["$ref"], path)
            if ptr in chain or doc.inlining.count(ptr) >= MAX_INLINE:
                raise GrammarError(
                    f"$ref {ptr!r} is recursive and combined with sibling keywords or allOf;"
                    " it cannot be merged",
                    keyword="$ref",
                    path=path,
                    hint="move the sibling keywords into the referenced definition",
                )
            target, tpath = self._resolve(ptr, doc, path)
            inlined.append(ptr)
            self._flatten(target, tpath, doc, out, (*chain, ptr), inlined)
        for i, branch in enumerate(s.get("allOf", ())):
            self._flatten(branch, jp(path, "allOf", i), doc, out, chain, inlined)
        rest = self._constraints(s, {"$ref", "allOf"})
        if "const" in rest:
            const = rest.pop("const")
            enum = rest.get("enum", [const])
            rest["enum"] = [v for v in enum if _value_key(v) == _value_key(const)]
            if not rest["enum"]:
                raise GrammarError("const is not among the enum values", keyword="const", path=path)
        if rest:
            out.append(rest)

    def _merge2(self, a: dict, b: dict, path: str) -> dict:
        def conflict(key: str, why: str = "") -> GrammarError:
            return GrammarError(
                f"allOf: {key!r} differs between branches and cannot be merged{why}",
                keyword="allOf",
                path=path,
                hint="merge the branches by hand",
            )

        for x, y in ((a, b), (b, a)):
            if x.get("additionalProperties", True) is not True:
                extra = set(y.get("properties", {})) - set(x.get("properties", {}))
                if extra:
                    raise conflict(
                        "additionalProperties",
                        f" (properties {sorted(extra)} of one branch are forbidden by another)",
                    )
        out = dict(a)
        for key, value in b.items():
            if key not in out:
                out[key] = value
                continue
            cur = out[key]
            if key == "type":
                both = _expand_types(_type_list(cur)) & _expand_types(_type_list(value))
                if not both:
                    raise GrammarError(
                        "allOf: the branches allow no common type", keyword="type", path=path
                    )
                out[key] = [
                    t for t in TYPES if t in both and not (t == "integer" and "number" in both)
                ]
            elif key == "enum":
                keys = {_value_key(v) for v in value}
                out[key] = [v for v in cur if _value_key(v) in keys]
                if not out[key]:
                    raise GrammarError(
                        "allOf: the enum/const values of the branches do not overlap",
                        keyword="enum",
                        path=path,
                    )
            elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"):
                out[key] = max(cur, value)
            elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"):
                out[key] = min(cur, value)
            elif key == "required":
                out[key] = list(dict.fromkeys([*cur, *value]))
            elif key == "uniqueItems":
                out[key] = cur or value
            elif key == "multipleOf":
                pass  # the validator checks every multipleOf of the original schema
            elif key == "properties":
                props = dict(cur)
                for name, sub in value.items():
                    props[name] = self._and(props[name], sub) if name in props else sub
                out[key] = props
            elif key in ("additionalProperties", "items"):
                out[key] = self._and(cur, value)
            elif key in ("anyOf", "oneOf"):
                combos = [self._and(x, y) for x in cur for y in value]
                if len(combos) > MAX_BRANCHES:
                    raise GrammarError(
                        f"allOf: combining {key} lists gives more than {MAX_BRANCHES} branches",
                        keyword=key,
                        path=path,
                    )
                out[key] = combos
            elif _value_key(cur) != _value_key(value):
                raise conflict(key)
        return out

    @staticmethod
    def _and(x: object, y: object) -> object:
        if x is False or y is False:
            return False
        if x is True:
            return y
        if y is True:
            return x
        return {"allOf": [x, y]}

    # ------------------------------------------------------------------ anyOf / oneOf

    def _combinators(self, s: dict, path: str, doc: _Doc, hint: str, depth: int) -> Node:
        siblings = self._constraints(s, {"anyOf", "oneOf"})
        lists = [(kw, s[kw]) for kw in ("anyOf", "oneOf") if kw in s]
        combos = list(
            product(*[[(kw, i, b) for i, b in enumerate(branches)] for kw, branches in lists])
        )
        if len(combos) > MAX_BRANCHES:
            raise GrammarError(
                f"anyOf x oneOf gives more than {MAX_BRANCHES} branches", keyword="anyOf", path=path
            )
        alts: list[Node] = []
        for n, combo in enumerate(combos):
            bpath = jp(path, *[p for kw, i, _ in combo for p in (kw, i)])
            branches = [b for _, _, b in combo]
            if any(b is False for b in branches):
                continue
            if siblings or len(branches) > 1:
                merged, inlined = self._merge_list([siblings, *branches], bpath, doc)
                doc.inlining.extend(inlined)
                try:
                    node = self._schema(merged, bpath, doc, f"{hint}-{n}", depth + 1)
                finally:
                    del doc.inlining[len(doc.inlining) - len(inlined) :]
            else:
                node = self._schema(branches[0], bpath, doc, f"{hint}-{n}", depth + 1)
            alts.append(self._named(node, f"{hint}-{n}"))
        if not alts:
            raise GrammarError("every branch is the schema `false`", keyword=lists[0][0], path=path)
        if "oneOf" in s and not self._exclusive(s["oneOf"], doc):
            self._report(
                "oneOf",
                path,
                "the grammar allows any branch; exactly-one-matches is checked after decoding",
            )
        return alt(*alts)

    def _exclusive(self, branches: list, doc: _Doc) -> bool:
        """True when the oneOf branches provably cannot both match (types, consts, discriminator)."""
        infos = []
        for b in branches:
            seen = 0
            while isinstance(b, dict) and "$ref" in b and seen < 32:
                try:
                    b, _ = self._resolve(self._pointer(b["$ref"], "$"), doc, "$")
                except GrammarError:
                    return False
                seen += 1
            if not isinstance(b, dict):
                return False
            infos.append(b)

        def disjoint(sets: list[set | None]) -> bool:
            if any(x is None for x in sets):
                return False
            return all(not (x & y) for i, x in enumerate(sets) for y in sets[i + 1 :])  # type: ignore[operator]

        def values(b: dict) -> set | None:
            if "const" in b:
                return {_value_key(b["const"])}
            if isinstance(b.get("enum"), list):
                return {_value_key(v) for v in b["enum"]}
            return None

        if disjoint([_expand_types(_type_list(b["type"])) if "type" in b else None for b in infos]):
            return True
        if disjoint([values(b) for b in infos]):
            return True
        if not all(_type_list(b.get("type", [])) == ["object"] for b in infos):
            return False  # `required` says nothing about non-objects, which match every branch
        common = set.intersection(*[set(b.get("required", [])) for b in infos])
        for prop in sorted(common):
            props = [b.get("properties", {}).get(prop) for b in infos]
            if all(isinstance(p, dict) for p in props) and disjoint([values(p) for p in props]):
                return True
        return False

    # ------------------------------------------------------------------ enum / const

    def _enum(self, s: dict, path: str) -> Node:
        values = list(s["enum"]) if "enum" in s else [s["const"]]
        if "const" in s and "enum" in s:
            values = [v for v in values if _value_key(v) == _value_key(s["const"])]
        if "type" in s:
            allowed = _expand_types(_type_list(s["type"]))
            values = [v for v in values if _json_type(v) in allowed]
        if not values:
            raise GrammarError(
                "no enum/const value satisfies the schema's type", keyword="enum", path=path
            )
        kinds = {_json_type(v) for v in values}
        applicable = set()
        if "string" in kinds:
            applicable |= STRING_KW
        if kinds & {"integer", "number"}:
            applicable |= NUMBER_KW
        if "object" in kinds:
            applicable |= OBJECT_KW
        if "array" in kinds:
            applicable |= ARRAY_KW
        for key in self._constraints(s, VALUE_KW):
            if key in applicable:
                self._report(
                    key,
                    path,
                    f"enum/const values are emitted as listed; each is checked against {key}",
                )
        try:
            texts = list(dict.fromkeys(json_text(v) for v in values))
        except ValueError as exc:  # NaN or infinity
            raise GrammarError(
                f"enum/const value is not JSON: {exc}", keyword="enum", path=path
            ) from None
        return alt(*(Lit(t) for t in texts))

    # ------------------------------------------------------------------ typed values

    def _typed(self, s: dict, path: str, doc: _Doc, hint: str, depth: int) -> Node:
        types = _type_list(s["type"]) if "type" in s else list(ALL_TYPES)
        if "number" in types and "integer" in types:
            types.remove("integer")
        if "type" in s:
            present = s.keys()
            for kws, kinds in (
                (STRING_KW, {"string"}),
                (NUMBER_KW, {"number", "integer"}),
                (OBJECT_KW, {"object"}),
                (ARRAY_KW, {"array"}),
            ):
                if kinds.isdisjoint(types):
                    for key in sorted(kws.intersection(present)):
                        self._note(f"{key} has no effect on type {'/'.join(types)}", path)
        parts = []
        for t in types:
            if t == "string":
                parts.append(self._string(s, path, hint))
            elif t == "integer":
                parts.append(self._integer(s, path))
            elif t == "number":
                parts.append(self._number(s, path))
            elif t == "boolean":
                parts.append(alt(Lit("true"), Lit("false")))
            elif t == "null":
                parts.append(Lit("null"))
            elif t == "object":
                parts.append(self._object(s, path, doc, hint, depth))
            else:
                parts.append(self._array(s, path, doc, hint, depth))
        return alt(*parts)

    def _string(self, s: dict, path: str, hint: str) -> Node:
        lo = self._bound(s, "minLength", path) or 0
        hi = self._bound(s, "maxLength", path)
        if hi is not None and lo > hi:
            raise GrammarError("minLength is above maxLength", keyword="maxLength", path=path)
        if "format" in s:
            fmt = s["format"]
            if fmt not in FORMATS:
                raise GrammarError(
                    f"unsupported format {fmt!r}",
                    keyword="format",
                    path=path,
                    hint=f"supported formats: {', '.join(FORMATS)}; or use a pattern",
                )
            if "pattern" in s:
                self._report(
                    "pattern", path, f"with format {fmt!r} the grammar enforces the format only"
                )
            self._length_fit(_format_bounds(fmt), lo, hi, path)
            return self._base(fmt)
        if "pattern" in s:
            return self._pattern(s["pattern"], lo, hi, path, hint)
        top = hi
        if top is None:
            top = max(lo, self.string_cap)
            self._note(f"strings without maxLength are capped at {top} characters", path)
            if lo == 0 and top == self.string_cap:
                return self._base("string")
        body = seq(Lit('"'), rep(self._base("char"), lo, top), Lit('"'))
        return self._rule(f"string-{lo}-{top}", body, token=True)

    def _length_fit(
        self, bounds: tuple[int, int | None], lo: int, hi: int | None, path: str
    ) -> None:
        """Check a format's length range against min/maxLength: error, fit, or report."""
        blo, bhi = bounds
        if (hi is not None and blo > hi) or (bhi is not None and bhi < lo):
            raise GrammarError(
                "minLength/maxLength cannot be met by the format",
                keyword="maxLength" if hi is not None and blo > hi else "minLength",
                path=path,
            )
        if blo < lo:
            self._report("minLength", path, "the grammar cannot combine it with the format")
        if hi is not None and (bhi is None or bhi > hi):
            self._report("maxLength", path, "the grammar cannot combine it with the format")

    def _pattern(self, src: str, lo: int, hi: int | None, path: str, hint: str) -> Node:
        cap = hi if hi is not None else self.string_cap
        parsed = parse_pattern(src, cap, path)
        pad = rep(self._base("char"), 0, cap)
        alts: list[Node] = []
        unsure = False
        for branch in parsed.branches:
            blo, bhi = length_bounds(branch.node)
            if hi is not None and blo > hi:
                continue  # this alternative can never fit
            anchored = branch.start and branch.end
            if anchored and bhi is not None and bhi < lo:
                continue
            if not (blo >= lo and (hi is None or (anchored and bhi is not None and bhi <= hi))):
                unsure = True
            if not anchored:
                self._note(
                    f"unanchored pattern: free text around the match is capped at {cap} characters",
                    path,
                )
            parts = [] if branch.start else [pad]
            core = encode_json(branch.node)
            if has_empty_class(core):
                self._maybe_unproductive = True  # an empty class like [^\s\S]
            parts.append(core)
            if not branch.end:
                parts.append(pad)
            alts.append(seq(*parts))
        if not alts:
            raise GrammarError(
                "no alternative of the pattern fits minLength/maxLength",
                keyword="pattern",
                path=path,
            )
        if unsure:
            for key, val in (("minLength", lo if lo else None), ("maxLength", hi)):
                if val is not None:
                    self._report(key, path, "the grammar cannot combine it with the pattern")
        if parsed.capped and hi is None:
            self._note(f"unbounded pattern quantifiers are capped at {cap} repetitions", path)
        return self._rule(f"{hint}-pattern", seq(Lit('"'), alt(*alts), Lit('"')), token=True)

    def _integer(self, s: dict, path: str) -> Node:
        lo, hi = numbers.integer_bounds(
            s.get("minimum"), s.get("maximum"), s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        )
        if "multipleOf" in s:
            self._report("multipleOf", path, "the grammar cannot express divisibility")
        if lo is not None and hi is not None and lo > hi:
            raise GrammarError(
                "no integer lies between the minimum and maximum", keyword="maximum", path=path
            )
        if lo is None and hi is None:
            self._note(f"integers without bounds are capped at {numbers.INT_DIGITS} digits", path)
            return self._base("integer")
        lo2, hi2, capped = numbers.capped_range(lo, hi)
        if capped:
            self._note(f"integers without bounds are capped at {numbers.INT_DIGITS} digits", path)
        name = f"int-{lo2}-{hi2}".replace("--", "-m")
        return self._rule(name, numbers.integer_range(lo2, hi2), token=True)

    def _number(self, s: dict, path: str) -> Node:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
            if key in s:
                self._report(key, path, "the grammar does not bound non-integer numbers")
        self._note(
            f"numbers have at most {numbers.INT_PART_DIGITS} integer digits, "
            f"{numbers.FRAC_DIGITS} fraction digits and a {numbers.EXP_DIGITS}-digit exponent",
            path,
        )
        return self._base("number")

    # ------------------------------------------------------------------ objects and arrays

    def _object(self, s: dict, path: str, doc: _Doc, hint: str, depth: int) -> Node:
        props: dict = s.get("properties", {})
        required = list(dict.fromkeys(s.get("required", [])))
        addl = s.get("additionalProperties", MISSING)
        listed: list[tuple[str, object, bool, str]] = []
        for key, sub in props.items():
            req = key in required
            if sub is False:
                if req:
                    raise GrammarError(
                        f"property {key!r} is required but its schema is false",
                        keyword="required",
                        path=path,
                    )
                continue
            listed.append((key, sub, req, jp(path, "properties", key)))
        for key in required:
            if key not in props:
                if addl is False:
                    raise GrammarError(
                        f"property {key!r} is required but additionalProperties is false",
                        keyword="required",
                        path=path,
                    )
                sub = addl if isinstance(addl, dict) else True
                listed.append((key, sub, True, jp(path, "additionalProperties")))
        if addl is MISSING:
            if self.strict_objects and (props or required):
                extra: object = None
                self._note("additionalProperties absent: no extra keys (strict_objects=True)", path)
            else:
                extra = True
        else:
            extra = None if addl is False else addl

        n_req = sum(1 for _, _, req, _ in listed if req)
        n_opt = len(listed) - n_req
        min_p = self._bound(s, "minProperties", path)
        max_p = self._bound(s, "maxProperties", path)
        unsat = GrammarError(
            "minProperties/maxProperties cannot be met by the listed properties",
            keyword="maxProperties" if max_p is not None and max_p < n_req else "minProperties",
            path=path,
        )
        if (max_p is not None and n_req > max_p) or (
            min_p is not None and max_p is not None and min_p > max_p
        ):
            raise unsat
        elo, ehi = 0, 0
        if extra is None:
            if min_p is not None and n_req + n_opt < min_p:
                raise unsat
            if min_p is not None and n_req < min_p:
                self._report(
                    "minProperties", path, "counting optional properties is left to the validator"
                )
            if max_p is not None and n_req + n_opt > max_p:
                self._report(
                    "maxProperties", path, "counting optional properties is left to the validator"
                )
        else:
            if n_opt == 0:
                elo = max(0, (min_p or 0) - n_req)
                ehi = max_p - n_req if max_p is not None else max(elo, self.array_cap)
                if elo:
                    self._report(
                        "minProperties", path, "repeated free keys collapse into one when parsed"
                    )
            else:
                ehi = max_p - n_req if max_p is not None else self.array_cap
                for key, val in (("minProperties", min_p), ("maxProperties", max_p)):
                    if val is not None:
                        self._report(
                            key, path, "counting optional properties is left to the validator"
                        )
            if max_p is None:
                self._note(f"extra object keys are capped at {ehi}", path)
            if listed:
                self._report(
                    "additionalProperties",
                    path,
                    "extra keys are free strings; one equal to a listed property is rejected after decoding",
                )

        kvs: list[Node] = []
        for key, sub, _, kpath in listed:
            value = self._schema(sub, kpath, doc, f"{hint}-{key}", depth + 1)
            kvs.append(seq(Lit(json_text(key) + ":"), self._named(value, f"{hint}-{key}")))
        reqs = [req for _, _, req, _ in listed]
        body = self._members(kvs, reqs, hint)
        nullable = not any(reqs)
        if extra is not None:
            xpath = jp(path, "additionalProperties")
            extra_value = self._schema(extra, xpath, doc, f"{hint}-extra", depth + 1)
            xnode = seq(self._base("string"), Lit(":"), self._named(extra_value, f"{hint}-extra"))
            tail = rep(seq(Lit(","), xnode), elo, ehi)
            if not kvs:
                body = self._list(xnode, elo, ehi)
            elif not nullable:
                body = seq(body, tail)
            else:
                only_extra = seq(xnode, rep(seq(Lit(","), xnode), 0, ehi - 1)) if ehi else None
                with_listed = seq(body, rep(seq(Lit(","), xnode), 0, ehi))
                body = opt(alt(with_listed, only_extra) if only_extra else with_listed)
        elif nullable:
            body = opt(body)
        return seq(Lit("{"), body, Lit("}"))

    def _members(self, kvs: list[Node], reqs: list[bool], hint: str) -> Node:
        """Non-empty member lists in fixed order; optional members nest, they never chain."""
        n = len(kvs)
        if n == 0:
            return EMPTY
        nullable_from = [all(not r for r in reqs[i:]) for i in range(n)] + [True]
        tails: dict[int, Node] = {}
        heads: dict[int, Node] = {}

        def rest(i: int) -> Node:  # possibly empty, each member preceded by ","
            if i == n:
                return EMPTY
            return opt(tail(i)) if nullable_from[i] else tail(i)

        def tail(i: int) -> Node:  # non-empty, each member preceded by ","
            if i not in tails:
                with_i = seq(Lit(","), kvs[i], rest(i + 1))
                if reqs[i] or i + 1 == n:
                    tails[i] = with_i
                else:
                    tails[i] = self._rule(f"{hint}-tail{i}", alt(with_i, tail(i + 1)))
            return tails[i]

        def head(i: int) -> Node:  # non-empty, no leading ","
            if i not in heads:
                with_i = seq(kvs[i], rest(i + 1))
                if reqs[i] or i + 1 == n:
                    heads[i] = with_i
                else:
                    heads[i] = self._rule(f"{hint}-head{i}", alt(with_i, head(i + 1)))
            return heads[i]

        for i in range(n - 1, -1, -1):  # build from the end: shallow recursion
            tail(i)
        return head(0)

    def _array(self, s: dict, path: str, doc: _Doc, hint: str, depth: int) -> Node:
        prefix = list(s.get("prefixItems", []))
        tail_schema = s.get("items", True)
        lo = self._bound(s, "minItems", path) or 0
        hi = self._bound(s, "maxItems", path)
        for i, p in enumerate(prefix):
            if p is False:
                hi = i if hi is None else min(hi, i)
                prefix = prefix[:i]
                break
        if tail_schema is False:
            hi = len(prefix) if hi is None else min(hi, len(prefix))
        if hi is None:
            hi = max(lo, len(prefix), self.array_cap)
            self._note(f"arrays without maxItems are capped at {hi} items", path)
        if lo > hi:
            raise GrammarError(
                "minItems cannot be met (maxItems, or items/prefixItems false, forbid it)",
                keyword="minItems",
                path=path,
            )
        if s.get("uniqueItems") is True:
            self._report("uniqueItems", path, "the grammar cannot compare items")
        prefix = prefix[:hi]
        nodes = [
            self._named(
                self._schema(p, jp(path, "prefixItems", i), doc, f"{hint}-{i}", depth + 1),
                f"{hint}-{i}",
            )
            for i, p in enumerate(prefix)
        ]
        tail: Node = EMPTY
        if hi > len(prefix):
            tail = self._named(
                self._schema(tail_schema, jp(path, "items"), doc, f"{hint}-item", depth + 1),
                f"{hint}-item",
            )

        body: Node = EMPTY
        if hi > len(prefix):
            k = len(prefix)
            rlo, rhi = max(0, lo - k), hi - k
            body = self._list(tail, rlo, rhi) if k == 0 else rep(seq(Lit(","), tail), rlo, rhi)
        for i in range(len(prefix) - 1, -1, -1):
            here = seq(Lit(",") if i else EMPTY, nodes[i], body)
            body = here if i < lo else opt(here)
        return seq(Lit("["), body, Lit("]"))


_LARK_REGISTRY_SIZE = 2048  # more than the compile and envelope caches hold together
_LARK_BY_GBNF: OrderedDict[str, str] = OrderedDict()


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
    return _compile_cached(key, string_cap, name, array_cap, strict_objects)


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
