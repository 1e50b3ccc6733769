"""The per-call confidence score: free tokens only, calibrated, the validator's verdict applied."""

from __future__ import annotations

import numpy as np
import pytest

from bench.calibrate_confidence import FEATURES, features, predict
from edgeagent.agent.confidence import (
    CALIBRATION_BIAS,
    CALIBRATION_WEIGHTS,
    answer_confidence,
    calibrated,
    call_confidences,
)
from edgeagent.runtime.local import TokenChoice


def _tokens(*pieces: tuple[str, float, bool]) -> list[TokenChoice]:
    return [TokenChoice(i, text, lp, 1.0, forced) for i, (text, lp, forced) in enumerate(pieces)]


def _call(arg_logprob: float) -> list[TokenChoice]:
    return _tokens(
        ('{"name":"', -0.05, False),
        ("get_weather", 0.0, True),
        ('","arguments":{"city":"', 0.0, True),
        ("Oslo", arg_logprob, False),
        ('"}}', 0.0, True),
    )


def test_weaker_argument_tokens_lower_the_score():
    sure, unsure = (call_confidences(_call(lp), 1, [1.0])[0] for lp in (-0.01, -2.5))
    assert 0.0 < unsure.score < sure.score <= 1.0
    assert unsure.parts["arg_min"] == pytest.approx(np.exp(-2.5), abs=1e-4)
    assert sure.parts["free_tokens"] == 2.0  # forced tokens carry no information


def test_validator_verdict_scales_the_score():
    valid, repaired, invalid = (call_confidences(_call(-0.3), 1, [v])[0] for v in (1.0, 0.6, 0.0))
    assert invalid.score == 0.0
    assert repaired.score == pytest.approx(0.6 * valid.score, abs=1e-3)


def test_runtime_score_matches_the_benchmark_fit():
    parts = {"decision": 0.9, "name_margin": 0.5, "arg_min": 0.2, "arg_mean": 0.7}
    x = features([{"parts": parts}])
    weights = np.array([CALIBRATION_WEIGHTS[k] for k in FEATURES])
    assert calibrated(parts) == pytest.approx(float(predict(x, weights, CALIBRATION_BIAS)[0]))


def test_answer_confidence_uses_free_tokens():
    assert answer_confidence([]).score == 0.0  # nothing sampled is no evidence (issue 8)
    low = answer_confidence(_tokens(("The", -3.0, False), (" end", -3.0, False)))
    high = answer_confidence(_tokens(("The", -0.1, False), (" end", -0.1, False)))
    assert low.score < high.score
