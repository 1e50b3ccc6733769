"""LoRA training on the agent's own records (optional ``[adapt]`` extra: torch, transformers, peft).

The base weights are the GGUF the runtime uses (transformers reads GGUF and dequantizes); the
text is what the runtime renders and tokenizes (``adapt.render``); the loss is on the assistant's
tokens only. Steps run until ``steps`` or the time budget, whichever comes first, with a
progress bar showing the loss; a checkpoint (adapter weights, optimizer, step, data order) is
saved every ``checkpoint_every`` steps and at the end, and a run with the same data and settings
resumes from it. The adapter is converted to GGUF and checked in llama.cpp (``adapt.convert``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeagent.errors import AdaptDependencyError, AdapterError, DatasetError

# The attention projections: with the MLP ones too, llama.cpp decoded 13-15% slower on SmolLM2
# (each adapted weight adds its own small matrix products); with these four, 5.6% (bench/README).
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
INSTALL_HINT = (
    "install the extra: pip install 'edgeagent[adapt]' (torch, transformers, peft: about 1 GB "
    "with the CPU build of torch; on Linux install torch from the CPU index first)"
)


@dataclass
class TrainConfig:
    """What to train on and how long; ``time_budget_s`` and ``steps`` both bound the run."""

    base: Path
    data: Path
    out: Path
    steps: int = 300
    rank: int = 8  # rank 16 decoded 11% slower than the base in llama.cpp, rank 8 within 10%
    alpha: float = 16.0
    learning_rate: float = 3e-4
    time_budget_s: float = 1800.0
    max_examples: int = 2000
    max_seq_tokens: int = 2048
    batch_size: int = 8
    holdout: float = 0.0  # share of records kept out of training for `adapt eval` (loop.held_out)
    seed: int = 0
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 25
    targets: tuple[str, ...] = TARGET_MODULES
    threads: int | None = None
    call_tokens: list[int] = field(default_factory=list)  # filled from the vocabulary

    def identity(self, data_digest: str) -> dict:
        """What must match for a checkpoint to be resumed."""
        return {
            "base": str(Path(self.base).resolve()),
            "data": data_digest,
            "rank": self.rank,
            "alpha": self.alpha,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "targets": list(self.targets),
            "max_examples": self.max_examples,
            "batch_size": self.batch_size,
            "holdout": self.holdout,
        }


@dataclass
class TrainResult:
    """What a run did and where its adapter is."""

    out: Path
    steps: int
    examples: int
    records: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    resumed_from: int = 0
    stopped_by: str = "steps"  # "steps" | "time"
    losses: list[float] = field(default_factory=list)  # one per step, this run and resumed
    check: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def require_training_stack():
    """torch, transformers and peft, or AdaptDependencyError saying how to install them."""
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise AdaptDependencyError(
            f"training needs {exc.name}, which is not installed", INSTALL_HINT
        ) from exc
    return torch, transformers, peft


def pick_device(torch) -> str:
    """Apple's Metal (MPS) when available, else the CPU."""
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def load_base(base: Path, torch, transformers):
    """The Hugging Face model from the same GGUF file the runtime loads (dequantized)."""
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(
            str(base.parent), gguf_file=base.name, dtype=torch.float32
        )
    except Exception as exc:  # noqa: BLE001 - many failure kinds: one clear error
        raise AdapterError(
            f"transformers could not load {base.name} for training ({type(exc).__name__}: {exc})",
            "training needs an architecture transformers reads from GGUF (llama, qwen2, gemma3...)",
        ) from exc


def prepare_examples(config: TrainConfig, settings, registry):
    """Records -> token sequences, as the runtime renders them; also the dataset digest."""
    from edgeagent.adapt.dataset import dataset_digest, read_jsonl
    from edgeagent.adapt.render import TrainingRenderer

    records = read_jsonl(config.data)
    if config.holdout > 0:
        from edgeagent.adapt.loop import held_out

        records = held_out(records, config.holdout, config.seed)[0]
    records = records[: config.max_examples]
    renderer = TrainingRenderer(config.base, settings, registry)
    try:
        examples, too_long = renderer.examples(records, config.max_seq_tokens)
        n_vocab = renderer.model.n_vocab
        config.call_tokens = (
            renderer.call_start_tokens() if any(e.decision for e in examples) else []
        )
    finally:
        renderer.close()
    if not examples:
        raise DatasetError(f"{config.data} gave no usable training example", "export more history")
    return records, examples, too_long, dataset_digest(records), n_vocab


def _checkpoint_paths(config: TrainConfig) -> tuple[Path, Path]:
    folder = config.checkpoint_dir or config.out.with_name(config.out.stem + ".checkpoint")
    return folder, folder / "state.pt"


def train_adapter(
    config: TrainConfig, settings, registry=None, *, progress: bool = True
) -> TrainResult:
    """Train a LoRA adapter on ``config.data`` and write it as a checked GGUF to ``config.out``."""
    from edgeagent.adapt.convert import write_gguf_adapter
    from edgeagent.runtime.threads import physical_cores

    started = time.perf_counter()
    config.base, config.out = Path(config.base).expanduser(), Path(config.out).expanduser()
    records, examples, too_long, digest, n_vocab = prepare_examples(config, settings, registry)
    torch, transformers, peft = require_training_stack()  # after the data: its errors come first
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or physical_cores())
    device = pick_device(torch)
    model = load_base(config.base, torch, transformers)
    if model.get_input_embeddings().num_embeddings < n_vocab:
        raise AdapterError(
            f"transformers built a vocabulary of {model.get_input_embeddings().num_embeddings} "
            f"tokens from {config.base.name}, llama.cpp reads {n_vocab}",
            "this model's GGUF cannot be trained through transformers",
        )
    lora = peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        target_modules=list(config.targets),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, lora).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    identity = config.identity(digest)
    folder, state_file = _checkpoint_paths(config)
    step, resumed, losses = 0, 0, []
    if state_file.is_file():
        state = torch.load(state_file, weights_only=True)  # tensors and numbers, no pickled code
        if state.get("identity") == identity:
            peft.set_peft_model_state_dict(model, state["adapter"])
            optimizer.load_state_dict(state["optimizer"])
            step = resumed = int(state["step"])
            losses = list(state.get("losses", []))

    def schedule(at: int) -> float:
        warm = max(1, min(20, config.steps // 10))
        if at < warm:
            return (at + 1) / warm
        return max(0.1, 1 - (at - warm) / max(1, config.steps - warm))

    def save_checkpoint() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = state_file.with_suffix(".part")
        torch.save(
            {
                "identity": identity,
                "adapter": peft.get_peft_model_state_dict(model),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "losses": losses,
            },
            tmp,
        )
        tmp.replace(state_file)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=step, desc="training", unit="step")
    stopped_by = "steps"
    batches = Batches(examples, config.batch_size, config.seed)
    model.train()
    while step < config.steps:
        if time.perf_counter() - started > config.time_budget_s:
            stopped_by = "time"
            break
        prefix, suffixes = batches.batch(step)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * schedule(step)
        loss = shared_prefix_loss(model, prefix, suffixes, torch, device, config.call_tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        losses.append(round(float(loss.detach()), 4))
        if bar is not None:
            recent = losses[-10:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
            bar.update(1)
        if step % config.checkpoint_every == 0:
            save_checkpoint()
    if bar is not None:
        bar.close()
    save_checkpoint()
    state = {k: v.detach().cpu().numpy() for k, v in peft.get_peft_model_state_dict(model).items()}
    training = {
        "data": digest,
        "records": len(records),
        "examples": len(examples),
        "steps": step,
        "rank": config.rank,
        "alpha": config.alpha,
        "learning_rate": config.learning_rate,
        "loss_first": _mean(losses[: _window(losses)]),
        "loss_last": _mean(losses[-_window(losses) :]),
    }
    check = write_gguf_adapter(
        state, base_path=config.base, alpha=config.alpha, training=training, out=config.out
    )
    return TrainResult(
        out=config.out,
        steps=step,
        examples=len(examples),
        records=len(records),
        seconds=time.perf_counter() - started,
        first_loss=training["loss_first"],
        last_loss=training["loss_last"],
        losses=losses,
        resumed_from=resumed,
        stopped_by=stopped_by,
        check=check,
        left_out={"too_long": too_long},
    )


class Batches:
    """Batches of examples that share a system prompt, cycling through the data in a seeded
    order: each batch is (the shared prefix tokens, the examples' remaining tokens and how many
    of those are prompt)."""

    def __init__(self, examples, batch_size: int, seed: int) -> None:
        groups: dict[str, list] = {}
        for example in examples:
            groups.setdefault(example.group, []).append(example)
        rng = random.Random(seed)
        self.batches: list[tuple[tuple[int, ...], list[tuple[tuple[int, ...], int]]]] = []
        for members in groups.values():
            rng.shuffle(members)
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                shared = _shared_prefix(chunk)
                self.batches.append(
                    (
                        chunk[0].tokens[:shared],
                        [(e.tokens[shared:], e.prompt_len - shared, e.decision) for e in chunk],
                    )
                )
        rng.shuffle(self.batches)

    def batch(self, step: int):
        return self.batches[step % len(self.batches)]


def _shared_prefix(examples) -> int:
    """Tokens every example starts with, leaving at least one prompt token to each (the first
    target token is predicted from the suffix's own logits)."""
    first = examples[0].tokens
    length = min(e.prompt_len for e in examples) - 1
    for example in examples[1:]:
        same = 0
        for a, b in zip(first[:length], example.tokens[:length], strict=False):
            if a != b:
                break
            same += 1
        length = same
    return max(0, length)


def shared_prefix_loss(model, prefix, suffixes, torch, device, call_tokens=()):
    """Mean loss over the batch's target tokens; the prefix is run once and its keys and values
    repeated for every example (gradients flow through it as through a full run).

    A decision example (``Example.decision``) adds one term instead of its tokens:
    ``-log(1 - P(a call-start token))`` at its first answer position.
    """
    width = max(len(tokens) for tokens, _, _ in suffixes)
    ids = torch.zeros((len(suffixes), width), dtype=torch.long, device=device)
    labels = torch.full((len(suffixes), width), -100, dtype=torch.long, device=device)
    decisions = []
    for row, (tokens, prompt_len, decision) in enumerate(suffixes):
        ids[row, : len(tokens)] = torch.tensor(tokens, device=device)
        if decision:
            decisions.append((row, prompt_len - 1))
        else:
            # right padding needs no mask: a causal model's real tokens never attend to later ones
            labels[row, prompt_len : len(tokens)] = ids[row, prompt_len : len(tokens)]
    cache, name = None, _cache_argument(model)
    if prefix:
        out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        if len(suffixes) > 1:
            cache.batch_repeat_interleave(len(suffixes))
    logits = model(input_ids=ids, use_cache=cache is not None, **{name: cache}).logits
    predicted = logits[:, :-1, :].reshape(-1, logits.shape[-1]).float()
    wanted = labels[:, 1:].reshape(-1)
    count = int((wanted != -100).sum())
    total = torch.nn.functional.cross_entropy(predicted, wanted, ignore_index=-100, reduction="sum")
    if decisions and len(call_tokens):
        index = torch.tensor(list(call_tokens), device=device)
        for row, position in decisions:
            logprobs = torch.log_softmax(logits[row, position].float(), dim=-1)
            p_call = torch.logsumexp(logprobs[index], dim=0).exp().clamp(max=1 - 1e-6)
            total = total - torch.log1p(-p_call)
            count += 1
    return total / max(1, count)


def _cache_argument(model) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers >= 5.2x) or the
    older ``past_key_values``."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _window(losses: list) -> int:
    """How many steps the first and last loss figures average (at most 10, never overlapping)."""
    return max(1, min(10, len(losses) // 2))


def _mean(values) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def save_report(result: TrainResult, path: Path) -> None:
    path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
