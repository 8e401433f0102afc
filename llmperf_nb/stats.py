"""Statistics computed from raw samples (never averages of averages)."""

from __future__ import annotations

import math
import statistics

#: Report thresholds: a cell is flagged unstable above these.
CV_WARN = 0.05
CI_HALF_WIDTH_WARN = 0.03


def summarize(values: list[float], confidence: float = 0.95) -> dict | None:
    """mean, median, std (sample), t-based confidence interval, CV, min, max and n."""
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if n == 0:
        return None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n) if n > 1 else None
    return {
        "n": n,
        "mean": mean,
        "median": statistics.median(values),
        "std": std,
        "min": min(values),
        "max": max(values),
        "cv": std / mean if mean else None,
        "ci_low": mean - half if half is not None else None,
        "ci_high": mean + half if half is not None else None,
        "confidence": confidence,
    }


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student t critical value."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def stability_warnings(summary: dict | None) -> list[str]:
    if not summary or summary["n"] < 2:
        return ["fewer than 2 repetitions: no spread"] if summary else []
    out = []
    if summary["cv"] is not None and summary["cv"] > CV_WARN:
        out.append(f"CV {summary['cv']:.1%} > {CV_WARN:.0%}")
    half = (summary["ci_high"] - summary["ci_low"]) / 2
    if summary["mean"] and half / summary["mean"] > CI_HALF_WIDTH_WARN:
        out.append(f"95% CI ±{half / summary['mean']:.1%} > ±{CI_HALF_WIDTH_WARN:.0%}")
    return out


def percentiles(values: list[float], qs: tuple[float, ...] = (50, 99)) -> dict | None:
    """Nearest-rank percentiles (a value that was measured, never an interpolation) and the max."""
    values = sorted(float(v) for v in values if v is not None)
    if not values:
        return None
    out = {f"p{q:g}": values[max(0, math.ceil(q / 100 * len(values)) - 1)] for q in qs}
    out.update(max=values[-1], n=len(values))
    return out
