"""Local inference through llama.cpp: load a GGUF, render its chat template, decode with bounds.

The decode loop is our own (not ``Llama.create_completion``) so that every generation is bounded
in tokens *and* wall-clock time, a grammar constraint can mask logits and fast-forward forced
tokens in one batch, and the log-probabilities of the freely chosen tokens are kept.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgeagent.config import Settings
from edgeagent.errors import GenerationLimitError, RuntimeLoadError
from edgeagent.runtime.chat_template import ChatTemplate, template_for_model
from edgeagent.runtime.model import Generation, TokenChoice, TokenConstraint
from edgeagent.runtime.threads import ThreadPlanner, physical_cores


def _is_looping(tokens: list[int], min_repeats: int = 4, max_period: int = 16) -> bool:
    """True when the tail of ``tokens`` is one short cycle repeated ``min_repeats`` times."""
    for period in range(1, max_period + 1):
        span = period * min_repeats
        if len(tokens) < span:
            return False
        tail = tokens[-span:]
        if all(tail[i] == tail[i % period] for i in range(span)):
            return True
    return False


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    peak = float(logits.max())
    shifted = logits - peak
    return shifted - math.log(float(np.exp(shifted).sum()))


MEMORY_HEADROOM = 0.85


def _not_finite(logits: np.ndarray) -> bool:
    """NaN or +inf anywhere: a broken model (-inf is a legitimately masked token)."""
    return bool(np.isnan(logits).any() or np.isposinf(logits).any())


# What special tokens look like (<|im_start|>, <start_of_turn>, [INST]); bounded, so linear.
_SPECIAL_SHAPE = re.compile(r"<[^<>\n]{1,64}>|\[[^\[\]\n]{1,64}\]")


@functools.cache
def _odd_shapes(specials: frozenset[str]) -> tuple[str, ...]:
    """Special texts that ``_SPECIAL_SHAPE`` would not find (checked one by one)."""
    return tuple(t for t in specials if not _SPECIAL_SHAPE.fullmatch(t))


def check_memory_for_context(path: Path, n_ctx: int) -> None:
    """Refuse a context whose KV cache and weights would not fit in the memory available now.

    A context of 10^11 tokens is not a setting llama.cpp rejects: it allocates until the
    process is killed. The estimate comes from the GGUF header (f16 keys and values).
    """
    import psutil

    from edgeagent.runtime.gguf_info import inspect_gguf

    info = inspect_gguf(path)
    per_token = info.kv_bytes_per_token()
    if not per_token:
        return
    available = psutil.virtual_memory().available
    budget = int(available * MEMORY_HEADROOM) - info.file_size
    need = per_token * n_ctx
    if need <= budget:
        return
    fits = max(0, budget // per_token)
    hint = (
        f"lower n_ctx (at most about {fits // 256 * 256} here) or close other programs"
        if fits >= 256
        else "close other programs or choose a smaller model"
    )
    raise RuntimeLoadError(
        f"a context of {n_ctx:,} tokens needs about {need / 2**30:.1f} GiB for its KV cache plus "
        f"{info.file_size / 2**30:.1f} GiB of weights, but only {available / 2**30:.1f} GiB of "
        "memory is available",
        hint,
    )


class LocalModel:
    """A GGUF model loaded in llama.cpp, with its chat template and a bounded decode loop."""

    def __init__(
        self,
        path: str | Path,
        settings: Settings,
        *,
        n_ctx: int | None = None,
        vocab_only: bool = False,
    ) -> None:
        """Load ``path``; with ``vocab_only`` only its vocabulary and template (no weights: for
        rendering and tokenizing exactly as the runtime does, e.g. training text)."""
        from edgeagent.runtime.gguf_info import check_gguf_file

        self.path = Path(path)
        check_gguf_file(self.path)
        self.settings = settings
        if vocab_only:
            self._init_vocab_only()
            return
        self.n_threads = settings.n_threads or physical_cores()
        # with n_threads unset, each decode uses the cores other programs leave free
        self.thread_planner = None if settings.n_threads else ThreadPlanner(self.n_threads)
        if self.thread_planner:
            self.thread_planner.look()
        started = time.perf_counter()
        self.adapter = None  # AdapterInfo of a loaded LoRA adapter (runtime.adapter)
        if settings.adapter is not None:
            from edgeagent.runtime.adapter import check_adapter

            self.adapter = check_adapter(self.path, settings.adapter)  # before any weights load
        check_memory_for_context(self.path, n_ctx or settings.n_ctx)
        self._llm = self._load(n_ctx or settings.n_ctx)
        self.n_vocab = self._llm.n_vocab()
        try:
            self.adapter_load_s = self._attach_adapter()
            self._check_finite_logits()
        except BaseException:
            self.close()
            raise
        self.load_s = time.perf_counter() - started
        self.n_ctx = self._llm.n_ctx()
        self.metadata = dict(self._llm.metadata)
        self.eos_token = self._llm.token_eos()
        self.template = self._make_template()

    def _load(self, n_ctx: int):
        import llama_cpp

        from edgeagent.runtime.cpu_quirks import apply_cpu_quirks

        apply_cpu_quirks()

        gpu_layers = self.settings.n_gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0
        try:
            return llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_gpu_layers=gpu_layers,
                n_batch=512,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise RuntimeLoadError(
                f"llama.cpp could not load {self.path.name}: {exc}",
                "check the file with `edgeagent models info PATH`; re-download it if it is damaged",
            ) from exc

    def _init_vocab_only(self) -> None:
        import llama_cpp

        self.n_threads, self.thread_planner, self.adapter, self.adapter_load_s = 1, None, None, 0.0
        started = time.perf_counter()
        try:
            # a vocabulary-only context warns that n_ctx exceeds a training context of 0
            with contextlib.redirect_stderr(io.StringIO()):
                self._llm = llama_cpp.Llama(
                    model_path=str(self.path), vocab_only=True, n_ctx=512, verbose=False
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise RuntimeLoadError(
                f"llama.cpp could not read the vocabulary of {self.path.name}: {exc}",
                "check the file with `edgeagent models info PATH`",
            ) from exc
        self.n_vocab = self._llm.n_vocab()
        self.load_s = time.perf_counter() - started
        self.n_ctx = 0
        self.metadata = dict(self._llm.metadata)
        self.eos_token = self._llm.token_eos()
        self.template = self._make_template()

    def _attach_adapter(self) -> float:
        """Apply the checked adapter to the context; returns the seconds it took (0 if none)."""
        if self.adapter is None:
            return 0.0
        from edgeagent.runtime.adapter import attach_adapter

        started = time.perf_counter()
        attach_adapter(self._llm, self.adapter.path, self.settings.adapter_scale)
        return time.perf_counter() - started

    def _check_finite_logits(self) -> None:
        """Refuse a model whose logits on a one-token probe are NaN or infinite (broken weights)."""
        llm = self._llm
        bos = llm.token_bos()
        probe = [bos] if bos >= 0 else llm.tokenize(b"Hello", add_bos=False, special=False)[:1]
        llm.eval(probe)
        broken = _not_finite(self._last_logits())
        llm.n_tokens = 0
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if broken:
            raise RuntimeLoadError(
                f"{self.path.name} produces logits that are not finite (NaN or inf) on a "
                "one-token probe: its weights are damaged or not supported by this llama.cpp",
                "re-download the model (`edgeagent models pull ID`) or choose another one",
            )

    def _make_template(self) -> ChatTemplate:
        meta = self.metadata
        return template_for_model(
            meta.get("tokenizer.chat_template"),
            architecture=meta.get("general.architecture"),
            name=meta.get("general.name"),
            bos_token=self.token_text(self._llm.token_bos()),
            eos_token=self.token_text(self.eos_token),
        )

    @property
    def llama(self):
        """The underlying ``llama_cpp.Llama`` (for ``runtime`` code that needs its vocabulary)."""
        return self._llm

    def grammar_engine(self, prefer: str = "llguidance"):
        """The grammar engine over this model's vocabulary (``runtime.engines.make_engine``)."""
        from edgeagent.runtime.engines import make_engine

        return make_engine(self._llm, self.fingerprint, prefer)

    def warm_prefix(self, system: str, cache_dir: Path):
        """Restore the KV state of the prompt prefix of ``system`` from memory or ``cache_dir``,
        or compute and save it; returns ``prefix_cache.WarmResult``."""
        from edgeagent.runtime.prefix_cache import PrefixCache, stable_prefix_text

        caches = self.__dict__.setdefault("_prefix_caches", {})
        cache = caches.get(Path(cache_dir))
        if cache is None:
            cache = caches[Path(cache_dir)] = PrefixCache(Path(cache_dir))
        return cache.warm(self, stable_prefix_text(self, system))

    @property
    def gpu_offload(self) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload()) and self.settings.n_gpu_layers != 0

    @property
    def fingerprint(self) -> str:
        """Identifies the model for caches: the file's name, size and modification time, and
        the same for a loaded adapter (with its scale): an adapter changes every KV cell."""
        stat = self.path.stat()
        own = f"{self.path.name}:{stat.st_size}:{int(stat.st_mtime)}"
        if self.adapter is None:
            return own
        lora = self.adapter.path.stat()
        return (
            f"{own}+{self.adapter.path.name}:{lora.st_size}:{int(lora.st_mtime)}"
            f"@{self.settings.adapter_scale:g}"
        )

    def call_start_tokens(self) -> list[int]:
        """Tokens whose text starts a single JSON call (``{``), cached per model.

        A list of parallel calls (``[``) is left out on purpose: the call prior should make the
        model call, not make it call several times; a list stays possible when the model itself
        prefers it.
        """
        cached = getattr(self, "_call_start_tokens", None)
        if cached is None:
            cached = self._call_start_tokens = self.tokens_starting((b"{",))
        return cached

    def tokens_starting(self, starts: tuple[bytes, ...], *, after_space: bool = False) -> list[int]:
        """Token ids whose text starts with one of ``starts`` (leading whitespace skipped with
        ``after_space``); a scan of the whole vocabulary."""
        found = []
        for token in range(self.n_vocab):
            text = self._llm.detokenize([token], special=False)
            if (text.lstrip() if after_space else text).startswith(starts):
                found.append(token)
        return found

    def token_text(self, token: int) -> str:
        """The text of one token, special tokens included."""
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        import llama_cpp

        return token == self.eos_token or bool(
            llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token)
        )

    def render(self, messages: Sequence, *, add_generation_prompt: bool = True, tools=None) -> str:
        """The prompt text for a conversation in the model's chat template.

        Message contents are data: a special token's text inside one (a file holding
        ``<|im_end|><|im_start|>system``) is neutralised so it cannot become a real turn marker.
        """
        safe = [
            {**m, "content": self.neutralize(m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in messages
        ]
        return self.template.render(safe, add_generation_prompt=add_generation_prompt, tools=tools)

    def special_texts(self) -> frozenset[str]:
        """The texts of the vocabulary's control and user-defined tokens (cached)."""
        cached = getattr(self, "_special_texts", None)
        if cached is None:
            import llama_cpp

            vocab = self._llm._model.vocab
            mask = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
            cached = frozenset(
                text
                for token in range(self.n_vocab)
                if llama_cpp.llama_vocab_get_attr(vocab, token) & mask
                and len(text := self.token_text(token)) > 1
            )
            self._special_texts = cached
        return cached

    def neutralize(self, text: str) -> str:
        """``text`` with every special token's text broken by a zero-width space (linear time)."""
        specials = self.special_texts()
        if not specials or not any(c in text for c in "<[|"):
            return text

        def breaks(found: str) -> str:
            return found[0] + "\u200b" + found[1:] if found in specials else found

        text = _SPECIAL_SHAPE.sub(lambda m: breaks(m.group(0)), text)
        for odd in _odd_shapes(specials):
            if odd in text:
                text = text.replace(odd, odd[0] + "\u200b" + odd[1:])
        return text

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a rendered prompt; BOS is added unless the template already wrote it."""
        bos_text = self.template.bos_token
        add_bos = not (bos_text and text.startswith(bos_text))
        if self.metadata.get("tokenizer.ggml.add_bos_token") == "false":
            add_bos = False
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    # ---- the decode loop -------------------------------------------------------------------

    def _plan_threads(self) -> int:
        """Set llama.cpp's thread count for this decode from the current load; return it."""
        if self.thread_planner is None:
            return self.n_threads
        import llama_cpp

        wanted = self.thread_planner.threads()
        if wanted != getattr(self, "_threads_now", self.n_threads):
            llama_cpp.llama_set_n_threads(self._llm._ctx.ctx, wanted, wanted)
        self._threads_now = wanted
        return wanted

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the KV cells of the longest common prefix; returns how many tokens are reused."""
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # always evaluate one token to get fresh logits
        if common < llm.n_tokens and not llm._ctx.kv_cache_seq_rm(-1, common, -1):
            common = 0  # some caches (e.g. sliding-window) cannot drop a tail: start over
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = common
        return common

    def _eval(self, tokens: Sequence[int], deadline: float) -> None:
        """Evaluate tokens in batches, checking the deadline between batches."""
        llm = self._llm
        for start in range(0, len(tokens), llm.n_batch):
            if time.perf_counter() > deadline:
                raise GenerationLimitError(
                    "the prompt took longer than the time limit to evaluate",
                    "shorten the prompt or raise decode_timeout_s",
                )
            llm.eval(list(tokens[start : start + llm.n_batch]))

    def _last_logits(self) -> np.ndarray:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float32)

    def generate(
        self,
        prompt: str | list[int],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        temperature: float | None = None,
        constraint: TokenConstraint | None = None,
        on_text: Callable[[str], None] | None = None,
        seed: int | None = None,
        repeat_penalty: float = 1.0,
        first_bias: dict[int, float] | None = None,
    ) -> Generation:
        """Decode from ``prompt`` until end of generation, the grammar ends, or a bound is hit.

        ``first_bias`` adds to the logits of some tokens at the first sampled step only (the
        agent uses it to weigh "start a call" against "start an answer").
        """
        threads = self._plan_threads()  # before the clock starts: not the decode's time
        started = time.perf_counter()
        max_tokens = max_tokens or self.settings.max_tokens
        timeout_s = timeout_s or self.settings.decode_timeout_s
        temperature = self.settings.temperature if temperature is None else temperature
        deadline = started + timeout_s
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not tokens:
            raise GenerationLimitError("the prompt is empty", "give the model something to read")
        if len(tokens) + max_tokens > self.n_ctx:
            raise GenerationLimitError(
                f"the prompt ({len(tokens)} tokens) plus {max_tokens} output tokens exceeds the "
                f"context of {self.n_ctx} tokens; nothing was truncated",
                "shorten the conversation, use fewer tools, or raise n_ctx",
            )
        rng = np.random.default_rng(seed)
        cached = self._reuse_prefix(tokens)
        self._eval(tokens[cached:], deadline)

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        choices: list[TokenChoice] = []
        ttft = 0.0
        finish = "length"

        def emit(token: int, logprob: float, margin: float, forced: bool) -> None:
            nonlocal ttft
            text = decoder.decode(self._llm.detokenize([token], special=False))
            if not ttft:
                ttft = time.perf_counter() - started
            pieces.append(text)
            choices.append(TokenChoice(token, text, logprob, margin, forced))
            if on_text and text:
                on_text(text)

        while len(choices) < max_tokens:
            if time.perf_counter() > deadline:
                finish = "timeout"
                break
            if constraint is not None:
                forced = constraint.forced_tokens()[: max_tokens - len(choices)]
                if forced:
                    for token in forced:
                        constraint.consume(token)
                        emit(token, 0.0, math.inf, True)
                    if constraint.is_finished():  # complete: no logits needed, skip the eval
                        finish = "grammar"
                        break
                    self._eval(forced, deadline)
                    continue
            # under a grammar only free choices count: forced JSON punctuation is no repetition
            recent = [c.token for c in choices[-64:] if constraint is None or not c.forced]
            token, logprob, margin = self._sample(
                constraint,
                temperature,
                rng,
                recent if repeat_penalty != 1.0 else (),
                repeat_penalty,
                first_bias if not any(not c.forced for c in choices) else None,
            )
            if token is None or self.is_end_of_generation(token):
                finish = "stop"
                break
            if constraint is not None:
                constraint.consume(token)
            emit(token, logprob, margin, False)
            if constraint is not None and constraint.is_finished():
                finish = "grammar"
                break
            if constraint is None and _is_looping([c.token for c in choices]):
                finish = "repetition"
                break
            batch = [token]
            if constraint is not None:  # the tokens the grammar forces next join the same batch
                forced = constraint.forced_tokens()[: max_tokens - len(choices)]
                for forced_token in forced:
                    constraint.consume(forced_token)
                    emit(forced_token, 0.0, math.inf, True)
                if forced and constraint.is_finished():
                    finish = "grammar"
                    break
                batch.extend(forced)
            self._eval(batch, deadline)
        pieces.append(decoder.decode(b"", final=True))
        total = time.perf_counter() - started
        return Generation(
            text="".join(pieces),
            finish_reason=finish,
            prompt_tokens=len(tokens),
            cached_prompt_tokens=cached,
            output_tokens=len(choices),
            ttft_s=ttft or total,
            total_s=total,
            choices=choices,
            threads=threads,
        )

    def _sample(
        self,
        constraint: TokenConstraint | None,
        temperature: float,
        rng,
        recent: Sequence[int] = (),
        repeat_penalty: float = 1.0,
        bias: dict[int, float] | None = None,
    ) -> tuple[int | None, float, float]:
        """Pick the next token under the mask: greedy at temperature 0, else softmax sampling."""
        logits = self._last_logits()
        if _not_finite(logits):
            raise RuntimeLoadError(
                f"{self.path.name} produced logits that are not finite (NaN or inf) while "
                "decoding: its weights are damaged or not supported by this llama.cpp",
                "re-download the model or choose another one",
            )
        if bias:
            ids = np.fromiter(bias.keys(), dtype=np.int64)
            logits[ids] += np.fromiter(bias.values(), dtype=np.float32)
        if recent:
            seen = np.fromiter(set(recent), dtype=np.int64)
            values = logits[seen]
            logits[seen] = np.where(values > 0, values / repeat_penalty, values * repeat_penalty)
        mask = constraint.allowed() if constraint is not None else None
        if mask is not None:
            if not mask.any():
                return None, 0.0, 0.0
            logits = np.where(mask[: self.n_vocab], logits, -np.inf)
        logprobs = _log_softmax(logits)
        if temperature <= 0:
            token = int(np.argmax(logprobs))
        else:
            scaled = np.exp(_log_softmax(logits / temperature))
            token = int(rng.choice(self.n_vocab, p=scaled / scaled.sum()))
        chosen = float(logprobs[token])
        logprobs[token] = -np.inf
        runner_up = float(logprobs.max())
        margin = chosen - runner_up if math.isfinite(runner_up) else math.inf
        return token, chosen, margin

    def score(self, tokens: Sequence[int], start: int) -> list[tuple[float, bool]]:
        """Teacher-forced: for each token from ``start`` on, its log-probability and whether it
        was the greedy choice (the KV cells of a shared prefix are reused, as in ``generate``)."""
        deadline = time.perf_counter() + self.settings.decode_timeout_s
        tokens = list(tokens)
        cached = self._reuse_prefix(tokens[:start])
        self._eval(tokens[cached:start], deadline)
        out = []
        for position in range(start, len(tokens)):
            logprobs = _log_softmax(self._last_logits())
            target = tokens[position]
            out.append((float(logprobs[target]), int(np.argmax(logprobs)) == target))
            if position + 1 < len(tokens):
                self._eval([target], deadline)
        return out

    def chat(self, messages: Sequence, **kwargs) -> Generation:
        """Render ``messages`` with the chat template and generate the assistant's reply."""
        return self.generate(self.render(messages), **kwargs)

    def close(self) -> None:
        """Free the llama.cpp context now rather than at garbage collection."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
