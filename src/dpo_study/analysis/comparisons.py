"""Comparison tables of a finished study: per category and per sweep (per question: analysis.questions).

Everything here reads the two study tables (``experiments.csv``, ``responses.csv``) and works with
whatever metric columns they hold: a numeric column of experiments.csv that is not an experiment
parameter is a metric, and an ``original_X``/``aligned_X`` pair of responses.csv is a per-response
metric. Stance metrics count valid answers only (``<side>_valid``, see dpo_study.analysis.metrics.validity):
a collapsed, off-topic or wrong-language answer is no measurement of a stance. A cell whose answer
pairs are mostly invalid is *not measured*; the tables say how many answers were left out and why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dpo_study.config.experiments import format_value
from dpo_study.config.questions import TEST_CATEGORY
from dpo_study.analysis.labels import ordered_metrics
from dpo_study.analysis.metrics import BOOLEAN_MEASURES, INVALID_REASONS
from dpo_study.analysis.statistics import (
    Change, Estimate, estimate, group_of, rate, runs, varying_params,
)

SIDES = (("before", "original"), ("after", "aligned"))
# A cell (experiment or group × category) with fewer valid answer pairs than this share is not measured.
MIN_VALID_SHARE = 0.5
STANCE_METRICS = ("support_rate", "neutral_rate", "stance_changed")
REASON_WORDS = {"collapsed": "collapsed", "off_topic": "off-topic", "wrong_language": "in the wrong language",
                "truncated": "cut at max_new_tokens"}


# ---- reading -----------------------------------------------------------------------------


def read_experiments(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def as_boolean(values: pd.Series) -> pd.Series:
    mapping = {True: True, False: False, "True": True, "False": False, 1: True, 0: False}
    return values.map(lambda v: mapping.get(v, pd.NA)).astype("boolean")


def read_responses(path: str) -> pd.DataFrame:
    """responses.csv with ids and categories as text, and every flag as a nullable boolean."""
    table = pd.read_csv(path, dtype={"id": str, "category": str, "language": str}, keep_default_na=False,
                        na_values=[""])
    for _, side in SIDES:
        for flag in BOOLEAN_MEASURES:
            if f"{side}_{flag}" in table:
                table[f"{side}_{flag}"] = as_boolean(table[f"{side}_{flag}"])
    return table


def prompt_categories(responses: pd.DataFrame) -> list[str]:
    """The prompt categories in file order, the test set first."""
    categories = list(dict.fromkeys(responses["category"]))
    return sorted(categories, key=lambda c: c != TEST_CATEGORY)


def count_test_prompts(responses: pd.DataFrame) -> int:
    """How many test prompts each model answered."""
    return int((responses["category"] == TEST_CATEGORY).sum() / max(responses["experiment"].nunique(), 1))


# ---- per prompt --------------------------------------------------------------------------


def valid(responses: pd.DataFrame, side: str) -> pd.Series:
    """Whether each answer of ``side`` is a valid measurement (all are, in a table without the flag)."""
    column = f"{side}_valid"
    if column not in responses:
        return pd.Series(True, index=responses.index)
    return responses[column].fillna(False).astype(bool)


def paired_metrics(responses: pd.DataFrame) -> list[str]:
    """The per-response metrics: stance rates, then numeric ``original_X``/``aligned_X`` pairs."""
    paired = [c.removeprefix("aligned_") for c in responses.columns
              if c.startswith("aligned_") and "original_" + c.removeprefix("aligned_") in responses.columns]
    numeric = [m for m in paired if m != "valid" and all(
        pd.api.types.is_numeric_dtype(responses[f"{side}_{m}"]) or responses[f"{side}_{m}"].dtype == "boolean"
        for _, side in SIDES)]
    stance = []
    if "stance" in paired:
        labels = set(responses["original_stance"]) | set(responses["aligned_stance"])
        stance = [f"{label}_rate" for label in ("support", "neutral") if label in labels] + ["stance_changed"]
    return ["valid_rate", *stance, *numeric]


def prompt_values(responses: pd.DataFrame, metric: str, side: str) -> pd.Series:
    """One value per answer of ``side`` (``original`` or ``aligned``); NaN where it measures nothing.

    Stance rates are 1/0 per valid answer; ``stance_changed`` needs both answers valid and exists
    after DPO only; ``valid_rate`` is 1/0 per answer; any other metric is the column's value.
    """
    if metric == "valid_rate":
        return valid(responses, side).astype(float)
    if metric.endswith("_rate") and metric.removesuffix("_rate") in ("support", "neutral", "oppose"):
        label = metric.removesuffix("_rate")
        return (responses[f"{side}_stance"] == label).astype(float).where(valid(responses, side))
    if metric == "stance_changed":
        if side == "original":
            return pd.Series(math.nan, index=responses.index)
        changed = (responses["original_stance"] != responses["aligned_stance"]).astype(float)
        return changed.where(valid(responses, "original") & valid(responses, "aligned"))
    return pd.to_numeric(responses[f"{side}_{metric}"].astype("Float64"), errors="coerce").astype(float)


def category_metrics(responses: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, category, metric): prompts, valid pairs, and the mean before and after DPO.

    Long form: experiment, category, prompts, valid_pairs, metric, before, after.
    """
    metrics = paired_metrics(responses)
    both_valid = valid(responses, "original") & valid(responses, "aligned")
    # Each answer's value does not depend on the other rows: computed once, then taken per group.
    values = {(metric, side): prompt_values(responses, metric, side).to_numpy(dtype=float, na_value=math.nan)
              for metric in metrics for side in ("original", "aligned")}
    rows = []
    for (experiment, category), part in responses.groupby(["experiment", "category"], sort=False):
        rows_at = responses.index.get_indexer(part.index)
        base = {"experiment": experiment, "category": category, "prompts": len(rows_at),
                "valid_pairs": int(both_valid.iloc[rows_at].sum())}
        for metric in metrics:
            rows.append({**base, "metric": metric, "before": rate(values[metric, "original"][rows_at]),
                         "after": rate(values[metric, "aligned"][rows_at])})
    return pd.DataFrame(rows, columns=["experiment", "category", "prompts", "valid_pairs", "metric", "before",
                                       "after"])


def invalid_reasons(responses: pd.DataFrame) -> str:
    """How many of the answers (both sides) are invalid, and why: '7 of 8 answers collapsed, ...'."""
    answers = 2 * len(responses)
    parts = []
    for reason in INVALID_REASONS:
        count = sum(int(responses[f"{side}_{reason}"].fillna(False).sum()) for _, side in SIDES
                    if f"{side}_{reason}" in responses)
        if count:
            parts.append(f"{count} of {answers} answers {REASON_WORDS[reason]}")
    return ", ".join(parts)


def measured(valid_pairs: int, pairs: int) -> bool:
    return pairs > 0 and valid_pairs >= MIN_VALID_SHARE * pairs


def no_measurement(responses: pd.DataFrame) -> str:
    return f"no valid measurement ({invalid_reasons(responses) or 'no answers'})"


# ---- seed groups -------------------------------------------------------------------------


def with_group(responses: pd.DataFrame, experiments: pd.DataFrame) -> pd.DataFrame:
    """The responses of distinct runs only, with their seed group."""
    table = runs(experiments)
    part = responses[responses["experiment"].isin(table["experiment"])].copy()
    part["group"] = part["experiment"].map(group_of(experiments))
    return part


def group_prompt_values(part: pd.DataFrame, metric: str, side: str) -> pd.Series:
    """Per prompt id: the mean over the group's seeds (NaN where no seed gave a valid answer)."""
    values = prompt_values(part, metric, side)
    return values.groupby(part["id"], sort=False).mean()


def prompt_run_table(part: pd.DataFrame, metric: str, side: str) -> pd.DataFrame:
    """Prompt id × run (experiment): the metric's value per answer, NaN where it measures nothing.
    The base model's answers (``original``) are the same in every run: one column."""
    values = prompt_values(part, metric, side).to_numpy(dtype=float, na_value=math.nan)
    # Rows and columns in order of appearance; each cell the first valid value of its (prompt, run),
    # as pivot_table's "first" takes it, in numpy: the report builds this table hundreds of times.
    id_codes, ids = pd.factorize(part["id"].to_numpy())
    run_codes, experiments = pd.factorize(part["experiment"].to_numpy())
    known = ~np.isnan(values)
    cells, first = np.unique((id_codes * len(experiments) + run_codes)[known], return_index=True)
    grid = np.full(len(ids) * len(experiments), math.nan)
    grid[cells] = values[known][first]
    table = pd.DataFrame(grid.reshape(len(ids), len(experiments)), index=pd.Index(ids, name="id"),
                         columns=pd.Index(experiments, name="experiment"))
    return table.iloc[:, :1] if side == "original" else table


def group_change(a: pd.DataFrame, b: pd.DataFrame, metric: str, a_side: str = "aligned", spread: bool = False
                 ) -> Change:
    """b − a for ``metric`` over the prompts of two answer tables (seed groups), seeds nested."""
    return Change.of(prompt_run_table(a, metric, a_side), prompt_run_table(b, metric, "aligned"), spread)


def stance_shift(responses: pd.DataFrame, experiments: pd.DataFrame, groups: list[str] | None = None
                 ) -> pd.DataFrame:
    """Per (seed group, category): the change of the support rate through DPO over the valid pairs.

    Columns: group, category, prompts, pairs, valid_pairs, measured, shift (mean over prompts of
    the per-prompt change, each averaged over seeds), low/high (the two-way bootstrap interval over
    prompts and seeds), effect (established: statistics.PROCEDURE), shift_sd/shift_n (spread over
    seeds), invalid (why answers were left out). ``groups``: only these seed groups.
    """
    part = with_group(responses, experiments)
    if groups is not None:
        part = part[part["group"].isin(groups)]
    rows = []
    for (group, category), cell in part.groupby(["group", "category"], sort=False):
        change = group_change(cell, cell, "support_rate", a_side="original")
        per_seed = [rate(prompt_values(seed, "support_rate", "aligned")) - rate(prompt_values(seed, "support_rate",
                                                                                               "original"))
                    for _, seed in cell.groupby("experiment", sort=False)]
        seeds = Estimate.of(per_seed)
        pairs = int(cell["id"].nunique())
        is_measured = measured(change.prompts, pairs)
        rows.append({"group": group, "category": category, "prompts": pairs, "pairs": pairs,
                     "valid_pairs": change.prompts, "measured": is_measured,
                     "shift": change.difference if is_measured else math.nan,
                     "low": change.low if is_measured else math.nan, "high": change.high if is_measured else math.nan,
                     "effect": is_measured and change.is_effect,
                     "shift_sd": seeds.sd if is_measured else math.nan, "shift_n": seeds.n if is_measured else 0,
                     "invalid": invalid_reasons(cell)})
    return pd.DataFrame(rows)


# ---- sweeps -------------------------------------------------------------------------------


def sweep_lines(summary: pd.DataFrame, param: str) -> list[tuple[str, pd.DataFrame]]:
    """The sweeps of ``param``: per setting of the other varied parameters, the groups along ``param``.

    Only settings where ``param`` takes at least two values count as a sweep; each line's rows are
    sorted by ``param``. The label names the other varied parameters' values.
    """
    others = [p for p in varying_params(summary) if p != param]
    found = [(dict(zip(others, keys)), part.sort_values(param))
             for keys, part in (summary.groupby(others, sort=True) if others else [((), summary)])
             if part[param].nunique() >= 2]
    # Name a line by what tells it from the other lines (by all its settings when it is alone).
    differing = [p for p in others if len({setting[p] for setting, _ in found}) > 1] or others
    return [(", ".join(f"{p}={format_value(setting[p])}" for p in differing) or "other settings fixed", part)
            for setting, part in found]


def swept_params(summary: pd.DataFrame) -> list[str]:
    return [p for p in varying_params(summary) if sweep_lines(summary, p)]


def summary_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics of a group summary (the columns that have an ``_sd`` beside them)."""
    return [c for c in summary.columns if f"{c}_sd" in summary.columns]


def outcome_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics measured after DPO (``X_after``) and of the run as a whole: what sweeps show."""
    metrics = summary_metrics(summary)
    return ordered_metrics([m for m in metrics if m.endswith("_after")]
                           + [m for m in metrics if not m.endswith(("_before", "_after")) and m != "train_seconds"])


def sweep_table(summary: pd.DataFrame, param: str) -> pd.DataFrame:
    """Long form of every sweep line of ``param``: param, value, setting, metric, mean, sd, n."""
    rows = []
    for label, line in sweep_lines(summary, param):
        for _, group in line.iterrows():
            for metric in outcome_metrics(summary):
                e = estimate(group, metric)
                rows.append({"param": param, "value": group[param], "setting": label, "group": group["group"],
                             "metric": metric, "mean": e.mean, "sd": e.sd, "n": e.n})
    return pd.DataFrame(rows)
