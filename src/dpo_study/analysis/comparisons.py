"""Comparison tables of a finished study: per category, per question, per sweep.

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
from dpo_study.config.questions import TEST_CATEGORY, question_categories
from dpo_study.analysis.labels import ordered_metrics
from dpo_study.analysis.metrics import BOOLEAN_MEASURES, INVALID_REASONS
from dpo_study.analysis.statistics import (
    Change, Estimate, estimate, group_of, metric_columns, rate, runs, varying_params,
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
    cells = (id_codes * len(experiments) + run_codes)[~np.isnan(values)]
    cells, first = np.unique(cells, return_index=True)
    grid = np.full(len(ids) * len(experiments), math.nan)
    grid[cells] = values[~np.isnan(values)][first]
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


# ---- questions ----------------------------------------------------------------------------


def question_title(question: dict) -> str:
    return question.get("title") or f"{question['a']} vs {question['b']}"


def run_metrics(experiments: pd.DataFrame) -> list[str]:
    """Metrics of a run as a whole (training, held-out pairs): experiments.csv's columns that are not
    a before/after pair of answer measures."""
    return [m for m in metric_columns(runs(experiments)) if not m.endswith(("_before", "_after"))]


def question_table(question: dict, experiments: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """One question's table (``question_tables``)."""
    return question_tables([question], experiments, responses)[0]


def question_tables(questions: list[dict], experiments: pd.DataFrame, responses: pd.DataFrame
                    ) -> list[pd.DataFrame]:
    """Per question: the two sides of a question metric by metric, beside the base model, with the difference b − a.

    Each side is the seed group of the named experiment. Per category (the test prompts unless the
    question names ``categories``): the per-response metrics over that category's prompts, with a
    two-way bootstrap interval over prompts and seeds and its verdict (statistics.PROCEDURE); then
    (category '') the metrics of the run as a whole, with the same bootstrap over seeds alone (an
    interval only: one value a run is no comparison over prompts). Columns: question, category,
    prompts, valid_pairs, measured, metric, base, a_group, a_mean, a_sd, a_n, b_group, b_mean, b_sd,
    b_n, difference, low, high, established.
    """
    # What every question reads, computed once.
    group = group_of(experiments)
    part = with_group(responses, experiments)
    per_run = category_metrics(part)
    per_run["group"] = per_run["experiment"].map(group)
    categories = prompt_categories(responses)
    table = runs(experiments)
    metrics = ordered_metrics(run_metrics(experiments))
    return [_question_table(question, group, part, per_run, categories, table, metrics) for question in questions]


def _question_table(question: dict, group: dict, part: pd.DataFrame, per_run: pd.DataFrame, categories: list,
                    table: pd.DataFrame, whole_run_metrics: list[str]) -> pd.DataFrame:
    groups = {side: group[question[side]] for side in ("a", "b")}
    rows = []
    for category in question_categories(question, categories):
        cells = part[part["category"] == category]
        sides = {side: cells[cells["group"] == g] for side, g in groups.items()}
        metrics = per_run[per_run["category"] == category]
        for metric in ordered_metrics(dict.fromkeys(metrics["metric"])):
            by_metric = metrics[metrics["metric"] == metric]
            change = group_change(sides["a"], sides["b"], metric)
            prompts = int(sides["a"]["id"].nunique())
            is_measured = metric not in STANCE_METRICS or measured(change.prompts, prompts)
            estimates = {side: Estimate.of(by_metric.loc[by_metric["group"] == g, "after"])
                         for side, g in groups.items()}
            rows.append({"category": category, "prompts": prompts, "valid_pairs": change.prompts,
                         "measured": is_measured, "metric": metric, "base": float(by_metric["before"].mean()),
                         **estimates, "difference": change.difference, "low": change.low, "high": change.high,
                         "established": is_measured and change.is_effect})
    for metric in whole_run_metrics:
        values = {side: table.loc[table["group"] == g, metric] for side, g in groups.items()}
        over_seeds = Change.of(*(pd.DataFrame([v.to_numpy(dtype=float)]) for v in (values["a"], values["b"])))
        estimates = {side: Estimate.of(v) for side, v in values.items()}
        rows.append({"category": "", "prompts": math.nan, "valid_pairs": math.nan, "measured": True,
                     "metric": metric, "base": math.nan, **estimates,
                     "difference": estimates["b"].mean - estimates["a"].mean, "low": over_seeds.low,
                     "high": over_seeds.high, "established": pd.NA})
    out = pd.DataFrame(rows)
    out.insert(0, "question", question["name"])
    for side in ("a", "b"):
        side_estimates = out.pop(side)
        out.insert(len(out.columns) - 4, f"{side}_group", groups[side])
        for field in ("mean", "sd", "n"):
            out.insert(len(out.columns) - 4, f"{side}_{field}", [getattr(e, field) for e in side_estimates])
    for column in ("a_mean", "b_mean", "difference", "low", "high"):
        out.loc[~out["measured"], column] = math.nan
    return out


def side_estimate(row, side: str) -> Estimate:
    return Estimate(float(row[f"{side}_mean"]), float(row[f"{side}_sd"]), int(row[f"{side}_n"]))


def row_change(row) -> Change:
    """The difference of a question_table row as a Change (for its interval and verdict)."""
    return Change(float(row["difference"]), float(row["low"]), float(row["high"]),
                  0 if pd.isna(row["valid_pairs"]) else int(row["valid_pairs"]), 0,
                  int(row["a_n"]) if not pd.isna(row["a_n"]) else 1, int(row["b_n"]) if not pd.isna(row["b_n"]) else 1)


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
