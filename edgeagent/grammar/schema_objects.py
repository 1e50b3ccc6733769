"""Grammar rules for objects and arrays: properties in order, extra keys, prefix items.

Each function takes the ``RuleBuilder``, one checked schema object and ``compile_sub``, the
function that compiles a subschema (a property's, an item's), so this module never imports
the dispatcher in ``schema_walk``.
"""

from __future__ import annotations

from edgeagent.errors import GrammarError
from edgeagent.grammar.charsets import json_text
from edgeagent.grammar.nodes import EMPTY, Lit, Node, alt, opt, rep, seq
from edgeagent.grammar.rules import RuleBuilder, SchemaDoc, SubSchema, comma_list
from edgeagent.grammar.schema_keywords import jp
from edgeagent.grammar.schema_types import bound


class _Missing:
    """The type of ``MISSING``."""


MISSING = _Missing()  # an absent additionalProperties (unlike an explicit true)


def object_node(
    b: RuleBuilder,
    s: dict,
    path: str,
    doc: SchemaDoc,
    hint: str,
    depth: int,
    compile_sub: SubSchema,
) -> Node:
    """An object with the listed properties in order (required ones always) and extra keys."""
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
        if b.strict_objects and (props or required):
            extra: object = None
            b.note("additionalProperties absent: no extra keys (strict_objects=True)", path)
        else:
            extra = True
    else:
        extra = None if addl is False else addl

    n_req = sum(1 for _, _, req, _ in listed if req)
    n_opt = len(listed) - n_req
    min_p = bound(b, s, "minProperties", path)
    max_p = bound(b, s, "maxProperties", path)
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
            b.report("minProperties", path, "counting optional properties is left to the validator")
        if max_p is not None and n_req + n_opt > max_p:
            b.report("maxProperties", path, "counting optional properties is left to the validator")
    else:
        if n_opt == 0:
            elo = max(0, (min_p or 0) - n_req)
            ehi = max_p - n_req if max_p is not None else max(elo, b.array_cap)
            if elo:
                b.report("minProperties", path, "repeated free keys collapse into one when parsed")
        else:
            ehi = max_p - n_req if max_p is not None else b.array_cap
            for key, val in (("minProperties", min_p), ("maxProperties", max_p)):
                if val is not None:
                    b.report(key, path, "counting optional properties is left to the validator")
        if max_p is None:
            b.note(f"extra object keys are capped at {ehi}", path)
        if listed:
            b.report(
                "additionalProperties",
                path,
                "extra keys are free strings; one equal to a listed property is rejected after decoding",
            )

    kvs: list[Node] = []
    for key, sub, _, kpath in listed:
        value = compile_sub(b, sub, kpath, doc, f"{hint}-{key}", depth + 1)
        kvs.append(seq(Lit(json_text(key) + ":"), b.named(value, f"{hint}-{key}")))
    reqs = [req for _, _, req, _ in listed]
    body = members(b, kvs, reqs, hint)
    nullable = not any(reqs)
    if extra is not None:
        xpath = jp(path, "additionalProperties")
        extra_value = compile_sub(b, extra, xpath, doc, f"{hint}-extra", depth + 1)
        xnode = seq(b.base("string"), Lit(":"), b.named(extra_value, f"{hint}-extra"))
        tail = rep(seq(Lit(","), xnode), elo, ehi)
        if not kvs:
            body = comma_list(xnode, elo, ehi)
        elif not nullable:
            body = seq(body, tail)
        else:
            only_extra = seq(xnode, rep(seq(Lit(","), xnode), 0, ehi - 1)) if ehi else None
            with_listed = seq(body, rep(seq(Lit(","), xnode), 0, ehi))
            body = opt(alt(with_listed, only_extra) if only_extra else with_listed)
    elif nullable:
        body = opt(body)
    return seq(Lit("{"), body, Lit("}"))


def members(b: RuleBuilder, kvs: list[Node], reqs: list[bool], hint: str) -> Node:
    """Non-empty member lists in fixed order; optional members nest, they never chain."""
    n = len(kvs)
    if n == 0:
        return EMPTY
    nullable_from = [all(not r for r in reqs[i:]) for i in range(n)] + [True]
    tails: dict[int, Node] = {}
    heads: dict[int, Node] = {}

    def rest(i: int) -> Node:
        """Members ``i``.. (possibly none), each preceded by ","."""
        if i == n:
            return EMPTY
        return opt(tail(i)) if nullable_from[i] else tail(i)

    def tail(i: int) -> Node:
        """At least one of members ``i``.., each preceded by ","."""
        if i not in tails:
            with_i = seq(Lit(","), kvs[i], rest(i + 1))
            if reqs[i] or i + 1 == n:
                tails[i] = with_i
            else:
                tails[i] = b.rule(f"{hint}-tail{i}", alt(with_i, tail(i + 1)))
        return tails[i]

    def head(i: int) -> Node:
        """At least one of members ``i``.., without a leading ","."""
        if i not in heads:
            with_i = seq(kvs[i], rest(i + 1))
            if reqs[i] or i + 1 == n:
                heads[i] = with_i
            else:
                heads[i] = b.rule(f"{hint}-head{i}", alt(with_i, head(i + 1)))
        return heads[i]

    for i in range(n - 1, -1, -1):  # build from the end: shallow recursion
        tail(i)
    return head(0)


def array_node(
    b: RuleBuilder,
    s: dict,
    path: str,
    doc: SchemaDoc,
    hint: str,
    depth: int,
    compile_sub: SubSchema,
) -> Node:
    """An array: prefixItems in order, then items, within minItems/maxItems."""
    prefix = list(s.get("prefixItems", []))
    tail_schema = s.get("items", True)
    lo = bound(b, s, "minItems", path) or 0
    hi = bound(b, s, "maxItems", path)
    for i, p in enumerate(prefix):
        if p is False:
            hi = i if hi is None else min(hi, i)
            prefix = prefix[:i]
            break
    if tail_schema is False:
        hi = len(prefix) if hi is None else min(hi, len(prefix))
    if hi is None:
        hi = max(lo, len(prefix), b.array_cap)
        b.note(f"arrays without maxItems are capped at {hi} items", path)
    if lo > hi:
        raise GrammarError(
            "minItems cannot be met (maxItems, or items/prefixItems false, forbid it)",
            keyword="minItems",
            path=path,
        )
    if s.get("uniqueItems") is True:
        b.report("uniqueItems", path, "the grammar cannot compare items")
    prefix = prefix[:hi]
    nodes = [
        b.named(
            compile_sub(b, p, jp(path, "prefixItems", i), doc, f"{hint}-{i}", depth + 1),
            f"{hint}-{i}",
        )
        for i, p in enumerate(prefix)
    ]
    tail: Node = EMPTY
    if hi > len(prefix):
        tail = b.named(
            compile_sub(b, tail_schema, jp(path, "items"), doc, f"{hint}-item", depth + 1),
            f"{hint}-item",
        )

    body: Node = EMPTY
    if hi > len(prefix):
        k = len(prefix)
        rlo, rhi = max(0, lo - k), hi - k
        body = comma_list(tail, rlo, rhi) if k == 0 else rep(seq(Lit(","), tail), rlo, rhi)
    for i in range(len(prefix) - 1, -1, -1):
        here = seq(Lit(",") if i else EMPTY, nodes[i], body)
        body = here if i < lo else opt(here)
    return seq(Lit("["), body, Lit("]"))
