"""The dispatcher: which keyword family compiles a schema node, and the tool-parameter root.

``schema_node`` decides, for one schema (object or boolean), whether it is merged (``allOf``,
``$ref`` with siblings), referenced (``$ref``), split (``anyOf``/``oneOf``), listed
(``enum``/``const``) or typed, and hands it to ``schema_combinators``, ``schema_types`` or
``schema_objects``. Those modules compile subschemas through the ``compile_sub`` argument,
which is ``schema_node`` itself: this module is the only one that knows every family.
"""

from __future__ import annotations

from edgeagent.errors import GrammarError
from edgeagent.grammar import numbers
from edgeagent.grammar.nodes import Lit, Node, alt
from edgeagent.grammar.rules import RuleBuilder, SchemaDoc
from edgeagent.grammar.schema_combinators import any_of_node, merge_list, ref_node
from edgeagent.grammar.schema_keywords import (
    ALL_TYPES,
    ARRAY_KW,
    NUMBER_KW,
    OBJECT_KW,
    STRING_KW,
    check,
    constraints,
    type_list,
)
from edgeagent.grammar.schema_objects import array_node, object_node
from edgeagent.grammar.schema_types import enum_node, integer_node, number_node, string_node

MAX_DEPTH = 200


def schema_node(
    b: RuleBuilder, s: object, path: str, doc: SchemaDoc, hint: str, depth: int
) -> Node:
    """The grammar node of the schema ``s`` at ``path`` (rules it needs are added to ``b``)."""
    if depth > MAX_DEPTH:
        raise GrammarError("the schema is nested too deeply to compile", keyword=None, path=path)
    if s is True:
        return any_value(b, path)
    if s is False:
        raise GrammarError(
            "the schema `false` matches nothing", keyword=None, path=path,
            hint="remove the branch or property that uses it",
        )  # fmt: skip
    s = check(b, s, path)
    if not constraints(s):
        return any_value(b, path)
    if "allOf" in s or ("$ref" in s and constraints(s, {"$ref"})):
        merged, inlined = merge_list(b, [s], path, doc)
        doc.inlining.extend(inlined)
        try:
            return schema_node(b, merged, path, doc, hint, depth + 1)
        finally:
            del doc.inlining[len(doc.inlining) - len(inlined) :]
    if "$ref" in s:
        return ref_node(b, s["$ref"], path, doc, depth, schema_node)
    if "anyOf" in s or "oneOf" in s:
        return any_of_node(b, s, path, doc, hint, depth, schema_node)
    if "enum" in s or "const" in s:
        return enum_node(b, s, path)
    return typed_node(b, s, path, doc, hint, depth)


def typed_node(b: RuleBuilder, s: dict, path: str, doc: SchemaDoc, hint: str, depth: int) -> Node:
    """One alternative per allowed type (all types when ``type`` is absent)."""
    types = type_list(s["type"]) if "type" in s else list(ALL_TYPES)
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
                    b.note(f"{key} has no effect on type {'/'.join(types)}", path)
    parts = []
    for t in types:
        if t == "string":
            parts.append(string_node(b, s, path, hint))
        elif t == "integer":
            parts.append(integer_node(b, s, path))
        elif t == "number":
            parts.append(number_node(b, s, path))
        elif t == "boolean":
            parts.append(alt(Lit("true"), Lit("false")))
        elif t == "null":
            parts.append(Lit("null"))
        elif t == "object":
            parts.append(object_node(b, s, path, doc, hint, depth, schema_node))
        else:
            parts.append(array_node(b, s, path, doc, hint, depth, schema_node))
    return alt(*parts)


def any_value(b: RuleBuilder, path: str) -> Node:
    """Any JSON value (within the builder's caps, noted)."""
    b.note(
        f"free JSON values are bounded: strings <= {b.string_cap} characters, arrays and "
        f"objects <= {b.array_cap} members, numbers <= {numbers.INT_PART_DIGITS} integer digits",
        path,
    )
    return b.base("value")


def object_root(b: RuleBuilder, schema: object, doc: SchemaDoc) -> object:
    """The tool-parameter root: the schema intersected with ``{"type": "object"}``."""
    if schema is True:
        return {"type": "object"}
    if schema is False:
        raise GrammarError("the schema `false` matches nothing", keyword=None, path="$")
    s = check(b, schema, "$")
    if "type" in s and "object" not in type_list(s["type"]):
        raise GrammarError(
            "tool parameters must be a JSON object schema",
            keyword="type",
            path="$",
            hint='use {"type": "object", "properties": {...}}',
        )
    merged, _ = merge_list(b, [{"type": "object"}, s], "$", doc)
    return merged
