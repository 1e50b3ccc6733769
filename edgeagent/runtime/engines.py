"""Grammar engines: the same GBNF text in, a token constraint for the decode loop out.

- ``LLGuidanceEngine`` (default): llguidance over the llama.cpp vocabulary. The token mask costs
  microseconds whatever the vocabulary size, and tokens the grammar forces are fast-forwarded and
  evaluated in one batch instead of being sampled one by one.
- ``LlamaCppEngine`` (fallback): llama.cpp's own GBNF sampler, used when llguidance is missing or
  refuses a grammar. Correct but slow on large vocabularies (every step scans the whole vocab).

Both expose the same ``TokenConstraint`` interface (``edgeagent.runtime.model``), so the decode
loop keeps the log-probabilities of the freely chosen tokens either way. Only ``runtime/`` knows
them: ``grammar/`` is text in, text out, and the agent asks its ``Model`` for an engine.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
import warnings
from collections import OrderedDict

import numpy as np

from edgeagent.errors import GrammarError
from edgeagent.runtime.model import EngineInfo

_GRAMMAR_CACHE: dict[str, str] = {}
_LOCK = threading.Lock()
MATCHER_TEMPLATES = 32  # pristine matchers kept per model, least recently used dropped


def _grammar_key(gbnf: str) -> str:
    return hashlib.sha256(gbnf.encode("utf-8")).hexdigest()


class LLGuidanceConstraint:
    """A live llguidance matcher wrapped as a TokenConstraint."""

    def __init__(self, matcher, n_vocab: int, eos_token: int) -> None:
        import llguidance.numpy as llnp

        self._matcher = matcher
        self._n_vocab = n_vocab
        self._eos = eos_token
        self._llnp = llnp
        self._bitmask = llnp.allocate_token_bitmask(1, n_vocab)

    def forced_tokens(self) -> list[int]:
        if self._matcher.is_stopped():
            return []
        return list(self._matcher.compute_ff_tokens())

    def allowed(self) -> np.ndarray:
        self._llnp.fill_next_token_bitmask(self._matcher, self._bitmask, 0)
        bits = np.unpackbits(self._bitmask[0].view(np.uint8), bitorder="little")
        return bits[: self._n_vocab].astype(bool)

    def consume(self, token: int) -> None:
        if token == self._eos and self._matcher.is_accepting():
            return
        if not self._matcher.consume_token(token):
            raise GrammarError(
                f"the grammar rejected token {token}: {self._matcher.get_error() or 'no reason'}",
                hint="this is a bug in the grammar engine; report it with the grammar file",
            )

    def is_finished(self) -> bool:
        return bool(self._matcher.is_stopped())

    def is_accepting(self) -> bool:
        return bool(self._matcher.is_accepting())


class LLGuidanceEngine:
    """llguidance over a llama.cpp vocabulary; tokenizer and grammars cached per model."""

    info = EngineInfo("llguidance")

    def __init__(self, llama, model_key: str) -> None:
        import llguidance
        from llguidance.gbnf_to_lark import gbnf_to_lark
        from llguidance.llamacpp import lltokenizer_from_vocab

        self._llg = llguidance
        self._gbnf_to_lark = gbnf_to_lark
        self._llama = llama
        self._n_vocab = llama.n_vocab()
        self._eos = llama.token_eos()
        # The tokenizer calls back into this llama.cpp vocab, so it lives exactly as long as the
        # Llama object that owns the vocab (a cache keyed by file would outlive a closed model).
        with _LOCK:
            tokenizer = getattr(llama, "_edgeagent_lltokenizer", None)
            if tokenizer is None:
                with warnings.catch_warnings():  # one deprecation warning per vocab entry
                    warnings.simplefilter("ignore", DeprecationWarning)
                    tokenizer = lltokenizer_from_vocab(llama._model.vocab)
                llama._edgeagent_lltokenizer = tokenizer
        self.tokenizer = tokenizer

    def compile(self, gbnf: str) -> str:
        """The llguidance grammar for GBNF text (cached by its hash); GrammarError if refused."""
        key = _grammar_key(gbnf)
        cached = _GRAMMAR_CACHE.get(key)
        if cached is not None:
            return cached
        try:
            from edgeagent.grammar.compiler import lark_for

            # our compiler keeps an exact Lark twin of every grammar it emits; gbnf_to_lark
            # merges literal-only rules into greedy lexemes, which can reject valid JSON
            lark = lark_for(gbnf) or self._gbnf_to_lark(gbnf)
            grammar = self._llg.LLMatcher.grammar_from_lark(lark)
        except Exception as exc:  # llguidance raises ValueError/RuntimeError variants
            raise GrammarError(f"llguidance cannot parse the grammar: {exc}") from exc
        message = self._llg.LLMatcher.validate_grammar(grammar, self.tokenizer)
        if message:
            raise GrammarError(f"llguidance refused the grammar: {message}")
        _GRAMMAR_CACHE[key] = grammar
        return grammar

    def constraint(self, gbnf: str) -> LLGuidanceConstraint:
        """A fresh matcher positioned at the start of the grammar.

        Building a matcher costs 4-7 ms for a 20-tool envelope; a deep copy of an untouched
        one costs microseconds, so one pristine matcher per grammar is kept with the model.
        """
        key = _grammar_key(gbnf)
        with _LOCK:
            templates = getattr(self._llama, "_edgeagent_matchers", None)
            if templates is None:
                templates = self._llama._edgeagent_matchers = OrderedDict()
            template = templates.get(key)
            if template is not None:
                templates.move_to_end(key)
        if template is None:
            template = self._llg.LLMatcher(self.tokenizer, self.compile(gbnf), log_level=0)
            if template.is_error():
                raise GrammarError(
                    f"llguidance could not start the grammar: {template.get_error()}"
                )
            with _LOCK:
                templates[key] = template
                while len(templates) > MATCHER_TEMPLATES:
                    templates.popitem(last=False)
        return LLGuidanceConstraint(template.deep_copy(), self._n_vocab, self._eos)

    def constrain(self, gbnf: str):
        """A constraint, or llama.cpp's sampler with the reason when llguidance refuses."""
        try:
            return self.constraint(gbnf), self.info
        except GrammarError as exc:
            fallback = LlamaCppEngine(self._llama)
            return fallback.constraint(gbnf), EngineInfo("llama.cpp-gbnf", str(exc))


class LlamaCppConstraint:
    """llama.cpp's GBNF sampler as a TokenConstraint: the mask comes from a full-vocab pass."""

    def __init__(self, sampler, n_vocab: int, eos_token: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._sampler = sampler
        self._n_vocab = n_vocab
        self._eos = eos_token
        self._data = (llama_cpp.llama_token_data * n_vocab)()
        self._ids = np.arange(n_vocab, dtype=np.int32)
        view = np.ctypeslib.as_array(self._data)
        self._view = view
        self._done = False

    def forced_tokens(self) -> list[int]:
        return []

    def allowed(self) -> np.ndarray:
        view = self._view
        view["id"] = self._ids
        view["logit"] = 0.0
        view["p"] = 0.0
        array = self._lib.llama_token_data_array(
            data=ctypes.cast(self._data, ctypes.POINTER(self._lib.llama_token_data)),
            size=self._n_vocab,
            selected=-1,
            sorted=False,
        )
        self._lib.llama_sampler_apply(self._sampler, ctypes.byref(array))
        allowed = np.isfinite(view["logit"])
        self._done = bool(allowed[self._eos]) and int(allowed.sum()) == 1
        return allowed

    def consume(self, token: int) -> None:
        if token != self._eos:
            self._lib.llama_sampler_accept(self._sampler, token)

    def is_finished(self) -> bool:
        return self._done

    def close(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler:
            self._lib.llama_sampler_free(sampler)

    def __del__(self) -> None:
        self.close()


class LlamaCppEngine:
    """llama.cpp's native GBNF sampler (the fallback engine)."""

    info = EngineInfo("llama.cpp-gbnf")

    def __init__(self, llama, model_key: str = "") -> None:
        self._llama = llama
        self._n_vocab = llama.n_vocab()
        self._eos = llama.token_eos()

    def _sampler(self, gbnf: str):
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(
            self._llama._model.vocab, gbnf.encode("utf-8"), b"root"
        )
        if not sampler:
            raise GrammarError(
                "llama.cpp cannot parse the grammar (its parser printed the reason on stderr)",
                hint="check the grammar with `edgeagent grammar --schema FILE.json`",
            )
        return sampler

    def compile(self, gbnf: str) -> str:
        """Check that llama.cpp parses the grammar; returns it unchanged."""
        import llama_cpp

        llama_cpp.llama_sampler_free(self._sampler(gbnf))
        return gbnf

    def constraint(self, gbnf: str) -> LlamaCppConstraint:
        return LlamaCppConstraint(self._sampler(gbnf), self._n_vocab, self._eos)

    def constrain(self, gbnf: str):
        """A constraint and this engine's info (there is no further fallback)."""
        return self.constraint(gbnf), self.info


def make_engine(llama, model_key: str, prefer: str = "llguidance"):
    """The preferred engine, falling back to llama.cpp's sampler when llguidance is unavailable."""
    if prefer == "llguidance":
        try:
            return LLGuidanceEngine(llama, model_key)
        except ImportError:
            engine = LlamaCppEngine(llama, model_key)
            engine.info = EngineInfo("llama.cpp-gbnf", "llguidance is not installed")
            return engine
    if prefer in {"llama.cpp", "llamacpp", "gbnf"}:
        return LlamaCppEngine(llama, model_key)
    raise GrammarError(f"unknown grammar engine {prefer!r}", hint="use llguidance or llama.cpp")


def constrain(engine, gbnf: str):
    """A constraint from ``engine``; if llguidance refuses the grammar, llama.cpp's sampler."""
    return engine.constrain(gbnf)
