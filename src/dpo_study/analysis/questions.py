"""The homework questions' tables: each question's two seed groups, metric by metric, beside the
base model, with the difference b − a and its interval and verdict (statistics.PROCEDURE)."""

from __future__ import annotations

import math

import pandas as pd

from dpo_study.config.questions import question_categories
from dpo_study.analysis.comparisons import (
    STANCE_METRICS, category_metrics, group_change, measured, prompt_categories, with_group,
)
from dpo_study.analysis.labels import ordered_metrics
from dpo_study.analysis.statistics import Change, Estimate, group_of, metric_columns, runs


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
