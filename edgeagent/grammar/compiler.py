"""JSON Schema -> GBNF: exact where the grammar can be, loud where it cannot.

Every keyword is either expressed in the grammar, enforced by the validator and reported in
``CompiledGrammar.validator_keywords``, a documented annotation, or refused with a
``GrammarError`` naming the keyword and its JSON path. Nothing is dropped silently.
The supported subset and its exact semantics are documented in ``grammars/README.md``.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeagent.errors import GrammarError
from edgeagent.grammar.rules import RuleBuilder, SchemaDoc, ValidatorKeyword
from edgeagent.grammar.rules import sanitize as _sanitize  # noqa: F401  (bench clears its cache)
from edgeagent.grammar.schema_walk import MAX_DEPTH as MAX_DEPTH
from edgeagent.grammar.schema_walk import object_root, schema_node

if TYPE_CHECKING:
    from edgeagent.grammar.nodes import Node

__all__ = [
    "CompiledGrammar",
    "SchemaCompiler",
    "ValidatorKeyword",
    "compile_schema",
    "describe_validator_keywords",
    "lark_for",
]


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


class SchemaCompiler:
    """Compiles one or more JSON schemas into a single grammar with shared base rules.

    ``compile`` returns the rule name of each schema; ``grammar`` renders every rule reachable
    from a root. Rule names are deduplicated (identical bodies share one rule) and prefixed per
    schema, so an envelope can hold many tools' argument grammars at once. This is a facade:
    the rules live in a ``RuleBuilder`` (``rules``), ``schema_walk`` dispatches each schema
    node to its keyword family (``schema_types``, ``schema_objects``, ``schema_combinators``,
    checked by ``schema_keywords``).
    """

    def __init__(
        self, *, string_cap: int = 256, array_cap: int = 64, strict_objects: bool = True
    ) -> None:
        """A compiler with empty rules; the caps bound free strings, arrays and objects."""
        self.builder = RuleBuilder(
            string_cap=string_cap, array_cap=array_cap, strict_objects=strict_objects
        )

    @property
    def string_cap(self) -> int:
        """Longest free string, in characters."""
        return self.builder.string_cap

    @property
    def array_cap(self) -> int:
        """Most items of a free array (and keys of a free object)."""
        return self.builder.array_cap

    @property
    def strict_objects(self) -> bool:
        """Whether an absent additionalProperties means no extra keys."""
        return self.builder.strict_objects

    @property
    def rules(self) -> dict[str, Node | None]:
        """Every rule added so far (None while a rule is being built)."""
        return self.builder.rules

    def compile(self, schema: object, *, name: str = "root", require_object: bool = False) -> str:
        """Add ``schema``'s rules; returns the name of its top rule (``name`` sanitized)."""
        b = self.builder
        prefix = "root" if name == "root" else b.fresh(name)
        doc = SchemaDoc(root=schema, prefix=prefix)
        b.reserve(prefix)
        try:
            if require_object:
                target = object_root(b, schema, doc)
            else:
                target = schema
                doc.refs["#"] = prefix
            b.define(prefix, schema_node(b, target, "$", doc, prefix, 0))
        except RecursionError:
            raise GrammarError(
                "the schema is nested too deeply to compile", keyword=None, path="$"
            ) from None
        return prefix

    def add_rule(self, name: str, body: Node, *, token: bool = False) -> str:
        """Add a glue rule under a reserved name (root, call, calls, answer) or a fresh one.

        ``token`` marks a rule that is a single lexeme (a terminal in the Lark rendering).
        """
        return self.builder.add_rule(name, body, token=token)

    @property
    def validator_keywords(self) -> tuple[ValidatorKeyword, ...]:
        """Every keyword the validator must enforce, without repeats."""
        return self.builder.validator_keywords

    @property
    def notes(self) -> tuple[str, ...]:
        """The deliberate restrictions (caps, strict objects), each with its paths."""
        return self.builder.notes

    def mark(self) -> int:
        """Position in the validator keyword list (to slice one schema's keywords out)."""
        return self.builder.mark()

    def keywords_since(self, mark: int) -> tuple[ValidatorKeyword, ...]:
        """The validator keywords reported since ``mark``, without repeats."""
        return self.builder.keywords_since(mark)

    def grammar(self, root: str) -> str:
        """GBNF text: ``root ::= ...`` first, then every reachable rule; no unused rules."""
        return self.builder.gbnf(root)

    def lark(self, root: str) -> str:
        """The same grammar in llguidance's Lark syntax (see ``RuleBuilder.lark``)."""
        return self.builder.lark(root)

    def render(self, root: str) -> tuple[str, str]:
        """(GBNF, Lark) for ``root``; the pair is registered for ``lark_for``."""
        gbnf, lark = self.grammar(root), self.lark(root)
        _LARK_BY_GBNF[gbnf] = lark
        _LARK_BY_GBNF.move_to_end(gbnf)
        while len(_LARK_BY_GBNF) > _LARK_REGISTRY_SIZE:
            _LARK_BY_GBNF.popitem(last=False)
        return gbnf, lark

    def result(self, root: str) -> CompiledGrammar:
        """The compiled grammar for ``root`` with every keyword and note so far."""
        gbnf, lark = self.render(root)
        return CompiledGrammar(gbnf, root, self.validator_keywords, self.notes, lark)


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
    """``compile_schema`` for the schema's JSON text (cached)."""
    try:
        schema = json.loads(key)
    except RecursionError:
        raise GrammarError("the schema is nested too deeply", keyword=None, path="$") from None
    compiler = SchemaCompiler(
        string_cap=string_cap, array_cap=array_cap, strict_objects=strict_objects
    )
    root = compiler.compile(schema, name=name)
    return compiler.result(root)
