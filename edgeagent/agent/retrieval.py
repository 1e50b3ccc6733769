"""Which tools a request is about: a lexical match of its words against each tool's own words.

A tiny model asked "Name three uses of a paperclip" with twelve tools in view will often call one
(with its own name as the argument). Before the model decides, each tool is scored by the words
the request shares with the tool's name, description, parameter names and descriptions and its
declared ``keywords``, each word weighted by how few tools use it (a word every tool has decides
nothing). A request that matches no tool is answered in text; one that does sees only the tools
it matched, best first. Nothing here knows any benchmark item: the vocabulary is the tools'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z][a-z0-9]*|\d+")
# "12 times 7", "1234 + 4321", "15% of 80", "sqrt(2)": arithmetic a calculator-like tool wants
_ARITHMETIC = re.compile(
    r"\d\s*(?:[-+*/x×÷^%]|times|plus|minus|divided|over|percent|to the power)\s*(?:of\s*)?\(?\s*\d"
    r"|\b(?:sqrt|square root|cube root|log|ln|sin|cos|tan)\s*(?:\(|of\b|\d)"
    r"|\b(?:subtract|divide|multiply|add|(?:average|mean|sum|product) of)\s+(?:the\s+)?-?\d",
    re.IGNORECASE,
)
ARITHMETIC_WORD = "__arithmetic__"
# what looks like a path in a request: "notes.txt", "recipes/", "../../etc/passwd", "~/.ssh/x"
PATHLIKE = re.compile(r"[\w.~-]*/[\w./~-]*|[\w~-][\w.~-]*\.[A-Za-z0-9]{1,5}\b")
# a request naming a file or folder that exists in the working folder: a word for the tools that
# take such a path (agent.paths finds them; this module stays pure)
NAMED_FILE = "__named_file__"
NAMED_DIR = "__named_dir__"
_STOPWORDS_TEXT = (
    "a an the of to for and or in on at by is are be it its this that these those with from "
    "as into than then so if not no do does did can could would should will may might must "
    "i me my you your we our they them their he she his her what which who whom how when "
    "where why please there here just some any all each every one e g eg etc about up out "
    "more most less such only also very too get give tell want need let make use using used "
    "name names thing things"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
MAX_TOOLS_SHOWN = 4
KEEP_RATIO = 0.5  # tools scoring at least half the best score stay in view
# a best match scoring this much makes a call required (bench/fit_call_decision.py, tune split:
# every request scoring above 1.0 needed a tool; two of the 24 scoring exactly 1.0 did not)
STRONG_MATCH = 1.1
NAMED_BONUS = 0.75  # a named path, for the tool that declares it its own (tune split)


def _stem(word: str) -> str:
    """A crude stem so "files" meets "file", "listing" meets "list", "notes" meets "note"."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    return word


def words(text: str) -> set[str]:
    """The content words of ``text``, stemmed, without stopwords (plus the arithmetic signal)."""
    found = {_stem(w) for w in _WORD.findall(text.lower().replace("_", " ")) if w not in STOPWORDS}
    if _ARITHMETIC.search(text):
        found.add(ARITHMETIC_WORD)
    return {w for w in found if len(w) > 1 or w.isdigit()} - {""}


def tool_words(tool) -> set[str]:
    """The words a tool is known by: name, description, parameter names, declared keywords.

    Parameter descriptions are left out: they describe values ("file name pattern, e.g. *.py"),
    and their words would pull unrelated requests towards the tool.
    """
    text = [tool.name, tool.description, *(tool.parameters.get("properties") or {})]
    # digits in a tool's texts ("e.g. 2**10") are examples, never what a request is about
    found = {w for w in words(" ".join(text)) if not w.isdigit()}
    found.discard(ARITHMETIC_WORD)  # only a request can be arithmetic, or a declared keyword
    found |= path_words(tool)
    for keyword in getattr(tool, "keywords", ()) or ():
        signal = keyword in (ARITHMETIC_WORD, NAMED_FILE, NAMED_DIR)
        found |= {keyword} if signal else words(keyword)
    return found


def without_paths(text: str) -> str:
    """``text`` with its path-like words blanked out (numbers such as "86.25" stay)."""

    def blank(match: re.Match) -> str:
        return match.group(0) if match.group(0).replace(".", "").isdigit() else " "

    return PATHLIKE.sub(blank, text)


def path_words(tool) -> set[str]:
    """``NAMED_FILE``/``NAMED_DIR`` for a tool whose argument must name an existing path.

    A named file is for the tools that require such a path (read it, its facts); a named folder
    for any tool taking one (list it, search in it).
    """
    required = set(tool.parameters.get("required") or [])
    found = set()
    for validator in tool.validators:
        marked = getattr(validator, "existing_path", None)
        if not marked:
            continue
        arg, kind = marked
        if kind in ("file", None) and arg in required:
            found.add(NAMED_FILE)
        if kind in ("dir", None):
            found.add(NAMED_DIR)
    return found


@dataclass(frozen=True)
class Match:
    """One tool's score for a request, and the words that made it."""

    name: str
    score: float
    shared: tuple[str, ...]
    word_score: float = 0.0  # the score from the request's words alone (no named-path signal)


def match_tools(request: str, tools: Sequence, named: Iterable[str] = ()) -> list[Match]:
    """Tools the request shares words with, best first (an empty list: the request is chat).

    ``named`` adds ``NAMED_FILE``/``NAMED_DIR`` when the request names an existing path.
    """
    vocab = {t.name: tool_words(t) for t in tools}
    spread: dict[str, int] = {}
    for known in vocab.values():
        for word in known:
            spread[word] = spread.get(word, 0) + 1
    # a file's name is a value, not what the request is about ("status.txt" is no system status)
    asked = words(without_paths(request)) | set(named)
    matches = []
    for tool in tools:
        shared = asked & vocab[tool.name]
        if shared:
            score = sum(1.0 / spread[w] for w in shared)
            # a tool that declares a named path as its own signal is *the* tool for it (what
            # "what's in notes.txt" wants is read_file; file_info only if asked about size)
            declared = set(getattr(tool, "keywords", ()) or ()) & {NAMED_FILE, NAMED_DIR}
            score += NAMED_BONUS * len(declared & shared)
            worded = sum(1.0 / spread[w] for w in shared - {NAMED_FILE, NAMED_DIR})
            matches.append(
                Match(tool.name, round(score, 4), tuple(sorted(shared)), round(worded, 4))
            )
    return sorted(matches, key=lambda m: -m.score)


def tools_in_view(matches: Sequence[Match]) -> list[str]:
    """The names worth showing the grammar: within ``KEEP_RATIO`` of the best, at most 4."""
    if not matches:
        return []
    best = matches[0].score
    return [m.name for m in matches if m.score >= KEEP_RATIO * best][:MAX_TOOLS_SHOWN]
