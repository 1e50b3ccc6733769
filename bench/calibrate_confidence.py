"""Is the per-call confidence calibrated? Reliability of the score on BFCL items, fit and held-out.

Usage:
  python bench/calibrate_confidence.py --fit bench/out/bfcl_A.json --test bench/out/bfcl_B.json
      [--bins 5] [--l2 1.0] [--out bench/out/calibration_DATE.json]

Reads the per-item records that ``bench/bench_bfcl.py`` writes for our method (each proposal's
confidence and the parts of its weakest call) and BFCL's verdict. One row per item on which the
local model made a call: label 1 when BFCL's checker accepts the calls (a call on an irrelevance
item is wrong). For the current score and for a logistic fit on the parts (fitted on ``--fit``
only, L2-regularized, times the validator's verdict as today), it reports on ``--test``: AUROC (does a higher score mean more often
right), Brier score, expected calibration error (equal-width bins) and, per threshold, the
share of calls kept local and their accuracy (what the router's threshold trades).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeagent.agent.confidence import clipped_logit  # noqa: E402

FEATURES = ("decision", "name_margin", "arg_min", "arg_mean")
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def load_rows(paths: list[Path]) -> list[dict]:
    """Rows ``{model, id, score, parts, correct}`` for every item with a call, from bench files."""
    rows = []
    for path in paths:
        report = json.loads(path.read_text(encoding="utf-8"))
        for run in report["models"]:
            for item in run["ours"]["items"]:
                if not item.get("had_call") or not item.get("confidence_parts"):
                    continue
                rows.append(
                    {
                        "model": run["model"],
                        "id": item["id"],
                        "score": float(item["confidence"] or 0.0),
                        "parts": item["confidence_parts"],
                        "correct": bool(item["correct"]),
                    }
                )
    return rows


def features(rows: list[dict]) -> np.ndarray:
    """The parts as a matrix; probabilities go in as logits (clipped) so a linear fit fits."""
    out = np.zeros((len(rows), len(FEATURES)))
    for i, row in enumerate(rows):
        for j, name in enumerate(FEATURES):
            out[i, j] = clipped_logit(float(row["parts"].get(name, 0.0)))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularized logistic regression (Newton steps)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.eye(xb.shape[1]) * l2
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1 / (1 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + penalty @ w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def validator_factors(rows: list[dict]) -> np.ndarray:
    """The validator's verdict per row (1 valid, 0.6 after a repair, 0 invalid): a factor."""
    return np.array([float(r["parts"].get("validator", 1.0)) for r in rows])


def predict(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """Calibrated probabilities from the fitted weights (before the validator factor)."""
    return 1 / (1 + np.exp(-(x @ weights + bias)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Probability that a right call scores above a wrong one (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return None
    wins = sum(float(np.sum(p > neg)) + 0.5 * float(np.sum(p == neg)) for p in pos)
    return wins / (len(pos) * len(neg))


def reliability(scores: np.ndarray, labels: np.ndarray, bins: int) -> tuple[list[dict], float]:
    """Per-bin mean score vs accuracy, and the expected calibration error."""
    table, ece = [], 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for k in range(bins):
        lo, hi = edges[k], edges[k + 1]
        mask = (scores >= lo) & ((scores < hi) if k < bins - 1 else (scores <= hi))
        n = int(mask.sum())
        if not n:
            table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": 0})
            continue
        mean, acc = float(scores[mask].mean()), float(labels[mask].mean())
        ece += n / len(scores) * abs(mean - acc)
        table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": n, "mean_score": mean, "accuracy": acc})
    return table, ece


def selective(scores: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per threshold: share of calls at or above it (kept local) and their accuracy."""
    rows = []
    for t in THRESHOLDS:
        kept = scores >= t
        rows.append(
            {
                "threshold": t,
                "kept": float(kept.mean()) if len(scores) else None,
                "kept_accuracy": float(labels[kept].mean()) if kept.any() else None,
                "escalated_accuracy": float(labels[~kept].mean()) if (~kept).any() else None,
            }
        )
    return rows


def evaluate(scores: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    """Every figure for one score on one set."""
    table, ece = reliability(scores, labels, bins)
    return {
        "n": len(labels),
        "accuracy": float(labels.mean()) if len(labels) else None,
        "auroc": auroc(scores, labels),
        "brier": float(np.mean((scores - labels) ** 2)) if len(labels) else None,
        "ece": ece,
        "reliability": table,
        "selective": selective(scores, labels),
    }


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(report: dict) -> None:
    """Markdown tables for bench/README.md."""
    print("| set | score | n | accuracy | AUROC | Brier | ECE |")
    print("|---|---|---|---|---|---|---|")
    for set_name in ("fit", "test"):
        for score_name in ("current", "fitted"):
            r = report[set_name][score_name]
            print(
                f"| {set_name} | {score_name} | {r['n']} | {_fmt(r['accuracy'])} | "
                f"{_fmt(r['auroc'])} | {_fmt(r['brier'])} | {_fmt(r['ece'])} |"
            )
    print()
    print("| held-out, threshold | current: kept | kept acc | fitted: kept | kept acc |")
    print("|---|---|---|---|---|")
    test = report["test"]
    for cur, fit in zip(test["current"]["selective"], test["fitted"]["selective"], strict=True):
        print(
            f"| {cur['threshold']:.1f} | {_fmt(cur['kept'])} | {_fmt(cur['kept_accuracy'])} | "
            f"{_fmt(fit['kept'])} | {_fmt(fit['kept_accuracy'])} |"
        )
    print()
    weights = ", ".join(f"{k} {v:+.3f}" for k, v in report["weights"].items())
    print(f"fitted (logit features): {weights}, bias {report['bias']:+.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=Path, nargs="+", required=True)
    parser.add_argument("--test", type=Path, nargs="+", required=True)
    parser.add_argument("--bins", type=int, default=5)
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    fit_rows, test_rows = load_rows(args.fit), load_rows(args.test)
    if not fit_rows or not test_rows:
        print("no items with a call in one of the sets", file=sys.stderr)
        return 2
    report: dict = {
        "date": dt.date.today().isoformat(),
        "command": "python bench/calibrate_confidence.py " + " ".join(argv or sys.argv[1:]),
        "features": FEATURES,
    }
    x_fit, x_test = features(fit_rows), features(test_rows)
    y_fit = np.array([r["correct"] for r in fit_rows], dtype=float)
    y_test = np.array([r["correct"] for r in test_rows], dtype=float)
    weights, bias = fit_logistic(x_fit, y_fit, args.l2)
    report["weights"] = dict(zip(FEATURES, map(float, weights), strict=True))
    report["bias"] = bias
    for name, rows, x, y in (("fit", fit_rows, x_fit, y_fit), ("test", test_rows, x_test, y_test)):
        current = np.array([r["score"] for r in rows])
        report[name] = {
            "current": evaluate(current, y, args.bins),
            "fitted": evaluate(validator_factors(rows) * predict(x, weights, bias), y, args.bins),
            "by_model": {
                m: sum(1 for r in rows if r["model"] == m) for m in {r["model"] for r in rows}
            },
        }
    print_report(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
