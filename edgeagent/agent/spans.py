"""Arguments copied from the request: a search query or a note is a span of the user's words.

A 135M model asked to "search for Lisbon" writes ``{"query": "search_files"}`` or a timestamp as
often as ``"Lisbon"``: a free string lets it invent. Arguments a tool declares as taken from the
request (``Tool.request_spans``) get an ``enum`` of the request's contiguous word spans instead,
so the model only chooses where the value starts and ends; it cannot write a word the user did
not. Requests too long to enumerate keep the free-text argument (and the validator).

A span may not begin or end with a stopword or with one of the tool's own words: the query of
"search my notes for gym" can be "gym", not "search" or "the". An entry ``"arg:path"`` offers
the paths the request names ("save it to notes/x.md") instead; ``"arg:expression"`` the spans the
tool itself accepts as that argument and that are more than a number ("divide 355 by 113").
With nothing to offer, the argument stays free text.
"""

from __future__ import annotations

import copy
import re

MAX_WORDS = 40  # a longer request keeps free text (its spans would be too many to list)
MAX_SPAN_WORDS = 24
_WORD = re.compile(r"\S+")
_LEAD = "\"'`([{<«“‘"
_BARE_NUMBER = re.compile(r"[-+]?[\d.,]+")
_TRAIL = "\"'`)]}>».,;:!?…”’"


def request_spans(request: str, max_words: int = MAX_SPAN_WORDS) -> list[str] | None:
    """The request's contiguous word spans (quotes and end punctuation trimmed), longest last;
    None when the request has more than ``MAX_WORDS`` words."""
    bounds = [(m.start(), m.end()) for m in _WORD.finditer(request)]
    if not bounds or len(bounds) > MAX_WORDS:
        return None
    seen: dict[str, None] = {}
    for length in range(1, min(max_words, len(bounds)) + 1):
        for first in range(len(bounds) - length + 1):
            text = request[bounds[first][0] : bounds[first + length - 1][1]]
            text = text.lstrip(_LEAD).rstrip(_TRAIL).strip()
            if text:
                seen.setdefault(text, None)
    return list(seen) or None


def _content_spans(spans: list[str], tool) -> list[str]:
    """Spans whose first and last words are neither stopwords nor the tool's own words."""
    from edgeagent.agent.retrieval import tool_words, words

    own = tool_words(tool)

    def plain(word: str) -> bool:
        found = words(word.strip(_LEAD + _TRAIL))
        return bool(found) and not found <= own

    out = []
    for span in spans:
        parts = span.split()
        if plain(parts[0]) and plain(parts[-1]):
            out.append(span)
    return out


def _accepted(spans: list[str], tool, arg: str) -> list[str]:
    """Spans the tool validates as ``arg`` and that are more than a bare number."""
    out = []
    for span in spans:
        if _BARE_NUMBER.fullmatch(span):
            continue
        try:
            tool.check_arguments({arg: span})
        except Exception:  # noqa: BLE001 - any refusal means: not a choice
            continue
        out.append(span)
    return out


def with_request_spans(tool, request: str) -> dict:
    """``tool.parameters`` with an ``enum`` of request spans on its ``request_spans`` arguments."""
    from edgeagent.agent.paths import named_paths

    declared = getattr(tool, "request_spans", ()) or ()
    if not declared:
        return tool.parameters
    spans = request_spans(request) or []
    schema = copy.deepcopy(tool.parameters)
    changed = False
    for entry in declared:
        arg, _, kind = entry.partition(":")
        prop = (schema.get("properties") or {}).get(arg)
        if not isinstance(prop, dict) or prop.get("type") != "string" or "enum" in prop:
            continue
        if kind == "path":
            choices = list(dict.fromkeys(named_paths(request)))
        elif kind == "expression":
            choices = _accepted(spans, tool, arg)
        else:
            choices = _content_spans(spans, tool)
        low, high = prop.get("minLength", 0), prop.get("maxLength")
        fitting = [s for s in choices if len(s) >= low and (high is None or len(s) <= high)]
        if not fitting:
            continue
        prop["enum"] = fitting
        for key in ("minLength", "maxLength", "pattern"):
            prop.pop(key, None)
        changed = True
    return schema if changed else tool.parameters


def lacks_named_path(tool, request: str) -> bool:
    """Whether ``tool`` needs a path the user names (a required ``"arg:path"`` entry) and the
    request names none: "write a haiku" is not a request to write a file."""
    from edgeagent.agent.paths import named_paths

    required = set(tool.parameters.get("required") or [])
    for entry in getattr(tool, "request_spans", ()) or ():
        arg, _, kind = entry.partition(":")
        if kind == "path" and arg in required and not named_paths(request):
            return True
    return False


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\d])")
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "dozen": 12,
    "twenty": 20,
    "hundred": 100,
}


def request_numbers(request: str) -> list[float]:
    """The numbers a request states, in order: digits ("5C", "0.01", "1,250") and number words."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", request)
    found: list[float] = [float(m) for m in _NUMBER.findall(text)]
    found += [
        float(_NUMBER_WORDS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS
    ]
    return list(dict.fromkeys(found))


def with_number_choices(parameters: dict, request: str) -> dict:
    """``parameters`` with an ``enum`` of the request's numbers on each required number.

    A 135M model asked for "two charges of 5C and 7C placed 3 meters apart" writes
    ``charge1: 1, charge2: 2``; offered the numbers the user wrote, it picks among 5, 7, 3 and 2.
    Optional numbers stay free (the model may leave them out), and so does every number when
    the request states none, or none of the type (an integer argument and only "0.5" said).
    """
    numbers = request_numbers(request)
    props = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    if not numbers or not required & set(props):
        return parameters
    schema = copy.deepcopy(parameters)
    changed = False
    for name in required:
        prop = schema.get("properties", {}).get(name)
        if not isinstance(prop, dict) or "enum" in prop or "const" in prop:
            continue
        kind = prop.get("type")
        if kind == "integer":
            choices = [int(n) for n in numbers if n.is_integer()]
        elif kind == "number":
            choices = [int(n) if n.is_integer() else n for n in numbers]
        else:
            continue
        low, high = prop.get("minimum"), prop.get("maximum")
        choices = [c for c in choices if (low is None or c >= low) and (high is None or c <= high)]
        if not choices:
            continue
        prop["enum"] = choices
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
            prop.pop(key, None)
        changed = True
    return schema if changed else parameters
