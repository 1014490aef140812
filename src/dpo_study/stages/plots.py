"""Figures of a finished study (matplotlib, PNG): training curves, sweeps, length, stance shift.

Where a seed group has several seeds, points are the mean and error bars the sample standard
deviation over seeds (see dpo_study.analysis.statistics). Every file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dpo_study.config import atomic  # noqa: E402
from dpo_study.analysis.comparisons import (  # noqa: E402
    TEST_CATEGORY, count_test_prompts, read_experiments, read_responses, stance_shift, sweep_lines, swept_params,
)
from dpo_study.analysis.labels import PARAM_LABELS, fmt  # noqa: E402
from dpo_study.analysis.statistics import estimate, group_summary, runs, varying_params  # noqa: E402

DPI = 120
TRAINING_PANELS = [
    ("loss", "DPO loss"),
    ("rewards/margins", "reward margin chosen − rejected (β-scaled)"),
    ("rewards/accuracies", "reward accuracy (share of pairs)"),
]


def save(figure, path: str | Path) -> None:
    """Into a folder being written (no rename needed) or atomically to a single file."""
    with atomic.atomic_path(path) as temp:
        figure.savefig(temp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(figure)


def value_axis(axis, values: list) -> None:
    """Ticks at the values the study ran, written as in the config; a log axis for wide positive ranges."""
    if any(isinstance(v, str) for v in values):
        return  # matplotlib places strings as categories
    values = sorted({float(v) for v in values})
    if values[0] > 0 and values[-1] / values[0] >= 10:
        axis.set_xscale("log")
        axis.minorticks_off()
    axis.set_xticks(values, [fmt(v) for v in values])


def error_bars(line: pd.DataFrame, metric: str):
    estimates = [estimate(row, metric) for _, row in line.iterrows()]
    means = [e.mean for e in estimates]
    spreads = [0.0 if math.isnan(e.sd) else e.sd for e in estimates]
    return means, spreads, max(e.n for e in estimates)


# ---- training curves ---------------------------------------------------------------


def plot_training_curves(train_logs: list[str], training_dir: str, experiments: list[dict]) -> None:
    """Stage: per seed group, ``<group>.png``: loss, reward margin and accuracy over training, one line per seed.

    ``experiments`` (name + parameters) pair up, in order, with ``train_logs``.
    """
    table = pd.DataFrame([{"experiment": e["name"], **{k: v for k, v in e.items() if k != "name"}}
                          for e in experiments])
    table["train_log"] = list(train_logs)
    with atomic.atomic_path(training_dir) as folder:
        folder.mkdir()
        for group, members in runs(table).groupby("group", sort=False):
            figure = training_figure(group, members)
            figure.savefig(folder / f"{group}.png", dpi=DPI, bbox_inches="tight")
            plt.close(figure)


def training_figure(group: str, members: pd.DataFrame):
    """Loss, reward margin and accuracy over training, one line per seed of the group."""
    figure, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(4.2 * len(TRAINING_PANELS), 3.6))
    for _, member in members.iterrows():
        log = pd.read_csv(member["train_log"])
        x, x_label = (log["epoch"], "epoch") if "epoch" in log else (log["step"], "optimizer step")
        for axis, (column, label) in zip(axes, TRAINING_PANELS):
            if column in log:
                axis.plot(x, log[column], marker=".", label=f"seed {member['seed']}")
            axis.set_xlabel(x_label)
            axis.set_ylabel(label)
            axis.grid(alpha=0.3)
    axes[2].set_ylim(-0.05, 1.05)
    axes[0].legend(title="run", fontsize="small")
    figure.suptitle(f"Training of {group} (logged every optimizer step)")
    figure.tight_layout()
    return figure


# ---- support rate vs swept parameters ---------------------------------------------------


def plot_sweeps(experiments: str, responses: str, sweeps_dir: str) -> None:
    """Stage: per swept parameter, ``support_rate_vs_<param>.png`` with one line per other setting."""
    table = read_experiments(experiments)
    summary = group_summary(table)
    prompts = count_test_prompts(read_responses(responses))
    with atomic.atomic_path(sweeps_dir) as folder:
        folder.mkdir()
        for param in swept_params(summary):
            figure = sweep_figure(summary, param, prompts)
            figure.savefig(folder / f"support_rate_vs_{param}.png", dpi=DPI, bbox_inches="tight")
            plt.close(figure)


def sweep_figure(summary: pd.DataFrame, param: str, prompts: int):
    """Support rate after DPO along one swept parameter, one line per other setting."""
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    most_seeds = 1
    for label, line in sweep_lines(summary, param):
        means, spreads, n = error_bars(line, "support_rate_after")
        most_seeds = max(most_seeds, n)
        axis.errorbar(list(line[param]), means, yerr=spreads, marker="o", capsize=4, label=label)
    value_axis(axis, list(summary[param]))
    axis.axhline(summary["support_rate_before"].mean(), color="grey", linestyle="--",
                 label="base model (before DPO)")
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel(PARAM_LABELS.get(param, param))
    axis.set_ylabel(f"support rate after DPO\n(share of {prompts} test prompts)")
    spread = f"mean ± s.d. over up to {most_seeds} seeds" if most_seeds > 1 else "one seed per point"
    axis.set_title(f"Support rate vs {param} ({spread})")
    axis.grid(alpha=0.3)
    axis.legend(title="other settings", fontsize="small")
    return figure


# ---- response length vs epochs -------------------------------------------------------


def plot_length_vs_epochs(experiments: str, length_plot: str) -> None:
    """Stage: mean answer length after DPO vs num_epoch, one line per other setting."""
    summary = group_summary(read_experiments(experiments))
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    lines = sweep_lines(summary, "num_epoch") if "num_epoch" in varying_params(summary) else []
    base = summary["mean_chars_before"].mean()
    highest = base
    if lines:
        for label, line in lines:
            means, spreads, _ = error_bars(line, "mean_chars_after")
            axis.errorbar(line["num_epoch"], means, yerr=spreads, marker="o", capsize=4, label=label)
            highest = max(highest, *(m + s for m, s in zip(means, spreads)))
        title = "Answer length vs epochs"
    else:
        for _, group in summary.iterrows():
            e = estimate(group, "mean_chars_after")
            spread = 0 if math.isnan(e.sd) else e.sd
            axis.errorbar([group["num_epoch"]], [e.mean], yerr=[spread], marker="o", capsize=4, linestyle="none",
                          label=group["group"])
            highest = max(highest, e.mean + spread)
        title = "Answer length per experiment (num_epoch not swept: no trend to show)"
    axis.axhline(base, color="grey", linestyle="--", label="base model (before DPO)")
    axis.set_xlabel(PARAM_LABELS["num_epoch"])
    value_axis(axis, list(summary["num_epoch"]))
    axis.set_ylabel("mean answer length on the test prompts\n(characters)")
    axis.set_ylim(0, highest * 1.35)  # from zero, with room for the legend above the points
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="upper left")
    save(figure, length_plot)


# ---- stance shift heatmap ---------------------------------------------------------------


def plot_stance_heatmap(experiments: str, responses: str, heatmap: str) -> None:
    """Stage: change of the support rate through DPO, per prompt category (rows) × experiment (columns)."""
    table = read_experiments(experiments)
    response_table = read_responses(responses)
    shifts = stance_shift(response_table, table)
    categories = list(dict.fromkeys(shifts.sort_values("category", key=lambda c: c != TEST_CATEGORY,
                                                       kind="stable")["category"]))
    groups = list(dict.fromkeys(shifts["group"]))
    values = np.full((len(categories), len(groups)), np.nan)
    labels = [["" for _ in groups] for _ in categories]
    for _, row in shifts.iterrows():
        i, j = categories.index(row["category"]), groups.index(row["group"])
        if not row["measured"]:
            labels[i][j] = "no valid\nanswers"
            continue
        e = estimate(row, "shift")
        values[i, j] = e.mean
        labels[i][j] = f"{e.mean:+.2f}" + (f"\n±{e.sd:.2f}" if e.n > 1 else "") + ("*" if row["effect"] else "")
    prompts = shifts.groupby("category")["prompts"].first()
    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 3), max(3.0, 0.55 * len(categories) + 1.8)))
    image = axis.imshow(values, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(categories)):
        for j in range(len(groups)):
            dark = not np.isnan(values[i, j]) and abs(values[i, j]) > 0.6
            axis.text(j, i, labels[i][j], ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axis.set_xticks(range(len(groups)), groups, rotation=35, ha="right")
    axis.set_yticks(range(len(categories)), [f"{c} ({prompts[c]} prompts)" for c in categories])
    axis.set_xlabel("experiment")
    axis.set_ylabel("prompt category")
    colorbar = figure.colorbar(image, ax=axis)
    colorbar.set_label("Δ support rate over valid answers (after − before DPO)\n* 95% interval over prompts excludes 0")
    most_seeds = int(shifts["shift_n"].max()) if len(shifts) else 0
    axis.set_title("Stance shift by prompt category" + (" (mean ± s.d. over seeds)" if most_seeds > 1 else ""))
    save(figure, heatmap)
