"""Success and precision plots, one curve per run, the score in the legend (as pytracking draws them).

matplotlib is the optional `eval` extra (`pip install -e .[eval]`); without
it the scores are still written and a warning says how to get the plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from loguru import logger

from app.benchmarks.metrics import (
    CENTRE_THRESHOLDS_PX,
    GOT10K_THRESHOLDS,
    NORM_CENTRE_THRESHOLDS,
    OVERLAP_THRESHOLDS,
    PRECISION_INDEX,
)
from app.benchmarks.report import RunScores

PERCENT = 100.0
DPI = 150
# (curve key, x axis, x label, title, score shown in the legend)
ONE_PASS_PLOTS = (
    ("success", OVERLAP_THRESHOLDS, "Overlap threshold", "Success plot", "auc"),
    ("precision", CENTRE_THRESHOLDS_PX, "Location error threshold [pixels]", "Precision plot", "at"),
    ("norm_precision", NORM_CENTRE_THRESHOLDS, "Normalised location error threshold", "Normalised precision plot",
     "at"),
)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: boards and CI have no display
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no plots; `pip install -e .[eval]` adds it")
        return None
    return plt


def _draw(plt, runs: list[RunScores], key: str, x: np.ndarray, xlabel: str, title: str, scores: list[float],
          path: Path) -> Path:
    figure, axes = plt.subplots()
    for i in np.argsort(scores)[::-1]:
        axes.plot(x, np.asarray(runs[i].curves[key]) * PERCENT, label=f"{runs[i].name} [{scores[i] * PERCENT:.1f}]")
    axes.set(xlabel=xlabel, ylabel="Rate [%]", xlim=(x[0], x[-1]), ylim=(0, PERCENT), title=title)
    axes.grid(True, linestyle="-.")
    axes.legend(loc="lower left" if key == "success" else "lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def plot_runs(runs: list[RunScores], out: Path, got10k: bool = False) -> list[Path]:
    """PNG plots in OUT; empty when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if got10k:
        scores = [r.overall["ao"] for r in runs]
        return [_draw(plt, runs, "success", GOT10K_THRESHOLDS, "Overlap threshold", "Success plot (AO)", scores,
                      out / "success_plot.png")]
    paths = []
    for key, x, xlabel, title, score in ONE_PASS_PLOTS:
        curves = [np.asarray(r.curves[key]) for r in runs]
        scores = [float(c.mean()) if score == "auc" else float(c[PRECISION_INDEX]) for c in curves]
        paths.append(_draw(plt, runs, key, x, xlabel, title, scores, out / f"{key}_plot.png"))
    return paths
