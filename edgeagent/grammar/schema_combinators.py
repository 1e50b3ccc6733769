"""``$ref`` resolution and the combinators: ``allOf`` merging, ``anyOf``/``oneOf`` branches.

``CombinatorMixin`` is mixed into ``SchemaCompiler`` and uses its rule bookkeeping (``_schema``,
``_fresh``, ``_named``, ``_report``, ``rules``) and ``KeywordCheckMixin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from urllib.parse import unquote

from edgeagent.errors import GrammarError
from edgeagent.grammar.nodes import Node, Ref, alt
from edgeagent.grammar.schema_keywords import TYPES, expand_types, jp, type_list, value_key

MAX_BRANCHES = 64
MAX_INLINE = 16  # a $ref merged into its own expansion more often than this is infinite


@dataclass
class SchemaDoc:
    """One schema document being compiled: its root (for $ref) and its rule-name prefix."""

    root: object
    prefix: str
    refs: dict[str, str] = field(default_factory=dict)
    inlining: list[str] = field(default_factory=list)


class CombinatorMixin:
    """``$ref``, ``allOf``, ``anyOf`` and ``oneOf`` for ``SchemaCompiler``."""

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
    def _resolve(ptr: str, doc: SchemaDoc, path: str) -> tuple[object, str]:
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

    def _ref(self, ref: object, path: str, doc: SchemaDoc, depth: int) -> Node:
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

    def _merge_list(self, schemas: list, path: str, doc: SchemaDoc) -> tuple[dict, list[str]]:
        parts: list[dict] = []
        inlined: list[str] = []
        for s in schemas:
            self._flatten(s, path, doc, parts, (), inlined)
        merged: dict = {}
        for part in parts:
            merged = self._merge2(merged, part, path)
        return merged, inlined

    def _flatten(
        self,
        s: object,
        path: str,
        doc: SchemaDoc,
        out: list[dict],
        chain: tuple,
        inlined: list[str],
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
            rest["enum"] = [v for v in enum if value_key(v) == value_key(const)]
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
                both = expand_types(type_list(cur)) & expand_types(type_list(value))
                if not both:
                    raise GrammarError(
                        "allOf: the branches allow no common type", keyword="type", path=path
                    )
                out[key] = [
                    t for t in TYPES if t in both and not (t == "integer" and "number" in both)
                ]
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
            elif value_key(cur) != value_key(value):
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

    def _combinators(self, s: dict, path: str, doc: SchemaDoc, hint: str, depth: int) -> Node:
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

    def _exclusive(self, branches: list, doc: SchemaDoc) -> bool:
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
                return {value_key(b["const"])}
            if isinstance(b.get("enum"), list):
                return {value_key(v) for v in b["enum"]}
            return None

        if disjoint([expand_types(type_list(b["type"])) if "type" in b else None for b in infos]):
            return True
        if disjoint([values(b) for b in infos]):
            return True
        if not all(type_list(b.get("type", [])) == ["object"] for b in infos):
            return False  # `required` says nothing about non-objects, which match every branch
        common = set.intersection(*[set(b.get("required", [])) for b in infos])
        for prop in sorted(common):
            props = [b.get("properties", {}).get(prop) for b in infos]
            if all(isinstance(p, dict) for p in props) and disjoint([values(p) for p in props]):
                return True
        return False
