"""A per-call confidence score in [0, 1] from the log-probabilities of freely chosen tokens.

Forced tokens (the grammar left no choice) carry no information and are ignored. The parts:

- ``decision``: probability of the first free token of the output (call vs answer, and the first
  letters of the tool name under the grammar);
- ``name_margin``: how far the tool-name choice beat the runner-up (1 - exp(-margin));
- ``arg_min`` / ``arg_mean``: weakest and geometric-mean probability of free argument tokens;
- ``validator``: 1.0 valid, 0.6 valid after a repair turn, 0.0 invalid.

score = validator * sigmoid(bias + sum of weight * logit(part)), an estimate of the probability
that the call is right. The weights are a logistic fit on BFCL items (simple, multiple,
irrelevance; both tiny models; 64 calls), checked on 72 calls from held-out items: Brier 0.177
and calibration error 0.13, against 0.266 and 0.30 for the earlier hand-set weighted sum (see
``bench/calibrate_confidence.py`` and bench/README.md). ``name_margin``'s negative weight is
what the fit found (it overlaps with ``decision``), not a design choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NAME_MARKER = '{"name":"'
ARGS_MARKER = '"arguments":'


@dataclass(frozen=True)
class Confidence:
    """A score and the parts it was made from (stored with every call)."""

    score: float
    parts: dict[str, float]
    reason: str | None = None  # why the score is low when it is not from token evidence


def _spans(choices: Sequence) -> list[tuple[int, int]]:
    spans, offset = [], 0
    for choice in choices:
        spans.append((offset, offset + len(choice.text)))
        offset += len(choice.text)
    return spans


def _free_in(choices, spans, start: int, end: int) -> list:
    return [
        c for c, (a, _b) in zip(choices, spans, strict=True) if start <= a < end and not c.forced
    ]


def _prob(logprob: float) -> float:
    """exp(logprob) clipped to [e^-50, 1]; a NaN (a broken model) is no evidence: 0."""
    if math.isnan(logprob):
        return 0.0
    return math.exp(max(-50.0, min(0.0, logprob)))


# bench/calibrate_confidence.py --fit bench/out/bfcl_2026-11-22c.json (L2 1.0), logit features
CALIBRATION_WEIGHTS = {
    "decision": 0.554,
    "name_margin": -0.350,
    "arg_min": 1.858,
    "arg_mean": 0.507,
}
CALIBRATION_BIAS = -0.212
MAX_SCORE = 0.999
_LOGIT_CLIP = 1e-4


def clipped_logit(p: float) -> float:
    """log(p / (1 - p)) with p clipped away from 0 and 1 (the calibration's feature)."""
    p = min(max(p, _LOGIT_CLIP), 1.0 - _LOGIT_CLIP)
    return math.log(p / (1.0 - p))


def calibrated(parts: dict[str, float]) -> float:
    """The fitted probability that a valid call is right, from its token-level parts."""
    z = CALIBRATION_BIAS + sum(w * clipped_logit(parts[k]) for k, w in CALIBRATION_WEIGHTS.items())
    # an estimate from a few token probabilities is never certainty: a threshold of 1.0 always
    # escalates (a fully forced call, e.g. one tool with one possible path, scored 1.0 before)
    return min(MAX_SCORE, 1.0 / (1.0 + math.exp(-z)))


def call_confidences(
    choices: Sequence, call_count: int, validator: Sequence[float]
) -> list[Confidence]:
    """One Confidence per call found in the decoded output (calls in output order)."""
    text = "".join(c.text for c in choices)
    spans = _spans(choices)
    starts = []
    position = text.find(NAME_MARKER)
    while position != -1 and len(starts) < call_count:
        starts.append(position)
        position = text.find(NAME_MARKER, position + 1)
    free_all = [c for c in choices if not c.forced]
    decision = _prob(free_all[0].logprob) if free_all else 1.0
    results = []
    for index in range(call_count):
        start = starts[index] if index < len(starts) else 0
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        args_at = text.find(ARGS_MARKER, start, end)
        args_at = end if args_at == -1 else args_at
        name_tokens = _free_in(choices, spans, start, args_at)
        arg_tokens = _free_in(choices, spans, args_at, end)
        margin = name_tokens[0].margin if name_tokens else math.inf
        name_margin = 1.0 if math.isinf(margin) else 1.0 - math.exp(-max(0.0, margin))
        if arg_tokens:
            probs = [_prob(c.logprob) for c in arg_tokens]
            arg_min = min(probs)
            mean_logprob = sum(c.logprob for c in arg_tokens) / len(arg_tokens)
            arg_mean = _prob(mean_logprob) if math.isfinite(mean_logprob) else 0.0
        else:
            arg_min = arg_mean = 1.0
        verdict = validator[index] if index < len(validator) else 0.0
        first = decision if index == 0 else (_prob(name_tokens[0].logprob) if name_tokens else 1.0)
        raw = calibrated(
            {
                "decision": first,
                "name_margin": name_margin,
                "arg_min": arg_min,
                "arg_mean": arg_mean,
            }
        )
        parts = {
            "decision": round(first, 4),
            "name_margin": round(name_margin, 4),
            "arg_min": round(arg_min, 4),
            "arg_mean": round(arg_mean, 4),
            "validator": verdict,
            "free_tokens": float(len(name_tokens) + len(arg_tokens)),
        }
        results.append(Confidence(round(verdict * raw, 4), parts))
    return results


def answer_confidence(choices: Sequence) -> Confidence:
    """Confidence of a plain answer: the decision token and the geometric mean of free tokens.

    Full confidence needs evidence: an answer with no freely chosen token, an empty answer, or
    log-probabilities that are not finite (a broken model) score 0 with the reason.
    """
    free = [c for c in choices if not c.forced]
    if not free:
        return Confidence(0.0, {"decision": 0.0, "mean": 0.0}, "the model chose no token")
    if not "".join(c.text for c in choices).strip():
        return Confidence(0.0, {"decision": 0.0, "mean": 0.0}, "the answer is empty")
    logprobs = [c.logprob for c in free]
    if not all(math.isfinite(lp) for lp in logprobs):
        return Confidence(
            0.0, {"decision": 0.0, "mean": 0.0}, "the model's token probabilities are not finite"
        )
    decision = _prob(logprobs[0])
    mean = math.exp(sum(logprobs) / len(logprobs))
    score = min(MAX_SCORE, 0.6 * decision + 0.4 * mean)
    return Confidence(round(score, 4), {"decision": round(decision, 4), "mean": round(mean, 4)})
