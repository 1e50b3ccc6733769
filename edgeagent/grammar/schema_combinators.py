"""``$ref`` resolution and the combinators: ``allOf`` merging, ``anyOf``/``oneOf`` branches.

The functions take the ``RuleBuilder`` and the ``SchemaDoc`` (the document's ``$ref`` rules)
explicitly; those that compile subschemas also take ``compile_sub`` (see ``schema_walk``).
"""

from __future__ import annotations

from itertools import product
from urllib.parse import unquote

from edgeagent.errors import GrammarError
from edgeagent.grammar.nodes import Node, Ref, alt
from edgeagent.grammar.rules import RuleBuilder, SchemaDoc, SubSchema
from edgeagent.grammar.schema_keywords import (
    TYPES,
    check,
    constraints,
    expand_types,
    jp,
    type_list,
    value_key,
)

MAX_BRANCHES = 64
MAX_INLINE = 16  # a $ref merged into its own expansion more often than this is infinite


# ------------------------------------------------------------------ $ref


def pointer(ref: object, path: str) -> str:
    """The JSON pointer of a ``$ref`` inside the schema (``#`` or ``#/...``); refuses others."""
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


def resolve(ptr: str, doc: SchemaDoc, path: str) -> tuple[object, str]:
    """The subschema at ``ptr`` in the document, and its JSON path."""
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


def ref_node(
    b: RuleBuilder, ref: object, path: str, doc: SchemaDoc, depth: int, compile_sub: SubSchema
) -> Node:
    """A reference to the rule of a ``$ref`` target (compiled once per document)."""
    ptr = pointer(ref, path)
    if ptr in doc.refs:
        if b.is_pending(doc.refs[ptr]):
            b.mark_unproductive()  # a reference cycle
        return Ref(doc.refs[ptr])
    target, tpath = resolve(ptr, doc, path)
    last = ptr.rsplit("/", 1)[-1] if ptr != "#" else "self"
    name = b.fresh(f"{doc.prefix}-{unquote(last)}")
    doc.refs[ptr] = name
    b.reserve(name)
    b.define(name, compile_sub(b, target, tpath, doc, name, depth + 1))
    return Ref(name)


# ------------------------------------------------------------------ allOf merging


def merge_list(b: RuleBuilder, schemas: list, path: str, doc: SchemaDoc) -> tuple[dict, list[str]]:
    """The intersection of ``schemas`` as one schema, and the ``$ref`` pointers it inlined."""
    parts: list[dict] = []
    inlined: list[str] = []
    for s in schemas:
        _flatten(b, s, path, doc, parts, (), inlined)
    merged: dict = {}
    for part in parts:
        merged = _merge2(merged, part, path)
    return merged, inlined


def _flatten(
    b: RuleBuilder,
    s: object,
    path: str,
    doc: SchemaDoc,
    out: list[dict],
    chain: tuple,
    inlined: list[str],
) -> None:
    """Append the constraint sets of ``s`` to ``out``, with allOf branches and $refs inlined."""
    if s is True:
        return
    if s is False:
        raise GrammarError(
            "allOf contains the schema `false`: nothing can match", keyword="allOf", path=path
        )
    s = check(b, s, path)
    if "$ref" in s:
        ptr = pointer(s["$ref"], path)
        if ptr in chain or doc.inlining.count(ptr) >= MAX_INLINE:
            raise GrammarError(
                f"$ref {ptr!r} is recursive and combined with sibling keywords or allOf;"
                " it cannot be merged",
                keyword="$ref",
                path=path,
                hint="move the sibling keywords into the referenced definition",
            )
        target, tpath = resolve(ptr, doc, path)
        inlined.append(ptr)
        _flatten(b, target, tpath, doc, out, (*chain, ptr), inlined)
    for i, branch in enumerate(s.get("allOf", ())):
        _flatten(b, branch, jp(path, "allOf", i), doc, out, chain, inlined)
    rest = constraints(s, {"$ref", "allOf"})
    if "const" in rest:
        const = rest.pop("const")
        enum = rest.get("enum", [const])
        rest["enum"] = [v for v in enum if value_key(v) == value_key(const)]
        if not rest["enum"]:
            raise GrammarError("const is not among the enum values", keyword="const", path=path)
    if rest:
        out.append(rest)


def _merge2(left: dict, right: dict, path: str) -> dict:
    """The intersection of two constraint sets; GrammarError where it cannot be expressed."""

    def conflict(key: str, why: str = "") -> GrammarError:
        """The error for a keyword the branches disagree on."""
        return GrammarError(
            f"allOf: {key!r} differs between branches and cannot be merged{why}",
            keyword="allOf",
            path=path,
            hint="merge the branches by hand",
        )

    for x, y in ((left, right), (right, left)):
        if x.get("additionalProperties", True) is not True:
            extra = set(y.get("properties", {})) - set(x.get("properties", {}))
            if extra:
                raise conflict(
                    "additionalProperties",
                    f" (properties {sorted(extra)} of one branch are forbidden by another)",
                )
    out = dict(left)
    for key, value in right.items():
        if key not in out:
            out[key] = value
            continue
        cur = out[key]
        if key == "type":
            both = expand_types(type_list(cur)) & expand_types(type_list(value))
            if not both:
                raise GrammarError(
                    "allOf: the branches allow no common type", keyword="type", path=path
                )
            out[key] = [t for t in TYPES if t in both and not (t == "integer" and "number" in both)]
        elif key == "enum":
            keys = {value_key(v) for v in value}
            out[key] = [v for v in cur if value_key(v) in keys]
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
                props[name] = _and(props[name], sub) if name in props else sub
            out[key] = props
        elif key in ("additionalProperties", "items"):
            out[key] = _and(cur, value)
        elif key in ("anyOf", "oneOf"):
            combos = [_and(x, y) for x in cur for y in value]
            if len(combos) > MAX_BRANCHES:
                raise GrammarError(
                    f"allOf: combining {key} lists gives more than {MAX_BRANCHES} branches",
                    keyword=key,
                    path=path,
                )
            out[key] = combos
        elif value_key(cur) != value_key(value):
            raise conflict(key)
    return out


def _and(x: object, y: object) -> object:
    """The schema matching what both ``x`` and ``y`` match."""
    if x is False or y is False:
        return False
    if x is True:
        return y
    if y is True:
        return x
    return {"allOf": [x, y]}


# ------------------------------------------------------------------ anyOf / oneOf


def any_of_node(
    b: RuleBuilder,
    s: dict,
    path: str,
    doc: SchemaDoc,
    hint: str,
    depth: int,
    compile_sub: SubSchema,
) -> Node:
    """One alternative per anyOf x oneOf branch, each merged with the sibling keywords."""
    siblings = constraints(s, {"anyOf", "oneOf"})
    lists = [(kw, s[kw]) for kw in ("anyOf", "oneOf") if kw in s]
    combos = list(
        product(*[[(kw, i, br) for i, br in enumerate(branches)] for kw, branches in lists])
    )
    if len(combos) > MAX_BRANCHES:
        raise GrammarError(
            f"anyOf x oneOf gives more than {MAX_BRANCHES} branches", keyword="anyOf", path=path
        )
    alts: list[Node] = []
    for n, combo in enumerate(combos):
        bpath = jp(path, *[p for kw, i, _ in combo for p in (kw, i)])
        branches = [br for _, _, br in combo]
        if any(br is False for br in branches):
            continue
        if siblings or len(branches) > 1:
            merged, inlined = merge_list(b, [siblings, *branches], bpath, doc)
            doc.inlining.extend(inlined)
            try:
                node = compile_sub(b, merged, bpath, doc, f"{hint}-{n}", depth + 1)
            finally:
                del doc.inlining[len(doc.inlining) - len(inlined) :]
        else:
            node = compile_sub(b, branches[0], bpath, doc, f"{hint}-{n}", depth + 1)
        alts.append(b.named(node, f"{hint}-{n}"))
    if not alts:
        raise GrammarError("every branch is the schema `false`", keyword=lists[0][0], path=path)
    if "oneOf" in s and not _exclusive(s["oneOf"], doc):
        b.report(
            "oneOf",
            path,
            "the grammar allows any branch; exactly-one-matches is checked after decoding",
        )
    return alt(*alts)


def _exclusive(branches: list, doc: SchemaDoc) -> bool:
    """True when the oneOf branches provably cannot both match (types, consts, discriminator)."""
    infos = []
    for branch in branches:
        seen = 0
        while isinstance(branch, dict) and "$ref" in branch and seen < 32:
            try:
                branch, _ = resolve(pointer(branch["$ref"], "$"), doc, "$")
            except GrammarError:
                return False
            seen += 1
        if not isinstance(branch, dict):
            return False
        infos.append(branch)

    def disjoint(sets: list[set | None]) -> bool:
        """True when no two of the sets (all known) share a member."""
        if any(x is None for x in sets):
            return False
        return all(not (x & y) for i, x in enumerate(sets) for y in sets[i + 1 :])  # type: ignore[operator]

    def values(branch: dict) -> set | None:
        """The enum/const values a branch allows, or None when it does not list them."""
        if "const" in branch:
            return {value_key(branch["const"])}
        if isinstance(branch.get("enum"), list):
            return {value_key(v) for v in branch["enum"]}
        return None

    if disjoint(
        [expand_types(type_list(info["type"])) if "type" in info else None for info in infos]
    ):
        return True
    if disjoint([values(info) for info in infos]):
        return True
    if not all(type_list(info.get("type", [])) == ["object"] for info in infos):
        return False  # `required` says nothing about non-objects, which match every branch
    common = set.intersection(*[set(info.get("required", [])) for info in infos])
    for prop in sorted(common):
        props = [info.get("properties", {}).get(prop) for info in infos]
        if all(isinstance(p, dict) for p in props) and disjoint([values(p) for p in props]):
            return True
    return False
