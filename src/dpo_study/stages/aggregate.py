"""Summaries of the per-response table: per prompt category, defects before vs after, generalisation
from the test prompts to each probe category, and the judges' own accuracy.

Everything is computed from ``responses.csv`` (one row per experiment and prompt, with the original
and aligned answer's measures side by side), so the figures can be traced back to single answers.
Rates and means come from dpo_study.analysis.comparisons (stance rates over valid answers only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dpo_study.analysis.comparisons import category_metrics, invalid_reasons, measured, prompt_categories, read_responses
from dpo_study.config.questions import TEST_CATEGORY
from dpo_study.analysis.metrics import DEFECTS, INVALID_REASONS
from dpo_study.analysis.statistics import rate
from dpo_study.stages.tables import write_table

# A test-prompt stance shift smaller than this is no effect to generalise from (transfer left blank).
MIN_TEST_SHIFT = 0.05


def categories_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and category (the test prompts first): prompts, valid answer pairs, why answers
    were invalid, and each per-response metric before and after DPO (``<metric>_before``/``_after``)."""
    long = category_metrics(responses).set_index(["experiment", "category"])
    rows = []
    for experiment, by_experiment in responses.groupby("experiment", sort=False):
        for category in prompt_categories(by_experiment):
            part = long.loc[(experiment, category)]
            row = {"experiment": experiment, "category": category, "prompts": int(part["prompts"].iloc[0]),
                   "valid_pairs": int(part["valid_pairs"].iloc[0]),
                   "invalid": invalid_reasons(by_experiment[by_experiment["category"] == category])}
            for _, metric in part.iterrows():
                if metric["metric"] != "stance_changed":
                    row[f"{metric['metric']}_before"] = metric["before"]
                row[f"{metric['metric']}_after"] = metric["after"]
            rows.append(row)
    return pd.DataFrame(rows)


def defects_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, defect (or reason an answer is invalid) and prompt set: how many answers have
    it before and after DPO, how many aligned answers have it where the original did not (new), and
    the reverse (fixed)."""
    flags = [f for f in (*DEFECTS, *INVALID_REASONS[1:]) if f"original_{f}" in responses]
    rows = []
    for experiment, by_experiment in responses.groupby("experiment", sort=False):
        for defect in flags:
            for prompt_set, group in by_experiment.groupby("set", sort=False):
                before = group[f"original_{defect}"].fillna(False).astype(bool)
                after = group[f"aligned_{defect}"].fillna(False).astype(bool)
                rows.append({"experiment": experiment, "defect": defect, "set": prompt_set, "prompts": len(group),
                             "before": int(before.sum()), "after": int(after.sum()),
                             "new": int((after & ~before).sum()), "fixed": int((before & ~after).sum())})
    return pd.DataFrame(rows)


def generalisation_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and probe category: the mean stance shift (aligned − original stance score) against
    the shift on the test prompts; transfer = category shift / test shift; the support-rate shift and
    the share of changed labels over valid answer pairs (blank where the category is not measured)."""
    table = categories_table(responses)
    rows = []
    for experiment, part in table.groupby("experiment", sort=False):
        part = part.set_index("category")
        shift = part["stance_score_after"] - part["stance_score_before"]
        test_shift = float(shift.get(TEST_CATEGORY, float("nan")))
        for category, row in part.iterrows():
            if category == TEST_CATEGORY:
                continue
            is_measured = measured(int(row["valid_pairs"]), int(row["prompts"]))
            rows.append({
                "experiment": experiment,
                "category": category,
                "prompts": int(row["prompts"]),
                "valid_pairs": int(row["valid_pairs"]),
                "stance_shift": float(shift[category]),
                "test_stance_shift": test_shift,
                "transfer": float(shift[category]) / test_shift + 0.0 if abs(test_shift) >= MIN_TEST_SHIFT
                else float("nan"),
                "support_rate_shift": row["support_rate_after"] - row["support_rate_before"] if is_measured
                else float("nan"),
                "label_changed_rate": row["stance_changed_after"] if is_measured else float("nan"),
                "invalid": row["invalid"],
            })
    columns = ["experiment", "category", "prompts", "valid_pairs", "stance_shift", "test_stance_shift", "transfer",
               "support_rate_shift", "label_changed_rate", "invalid"]
    return pd.DataFrame(rows, columns=columns)


def judges_table(responses: pd.DataFrame, accuracies: list[str], primary: str) -> pd.DataFrame:
    """Each judge's hold-out agreement (and cross-validation where it learns), and how often it gives
    the primary judge's label on the study's own answers."""
    rows = []
    for path in accuracies:
        report = json.loads(Path(path).read_text())
        name, holdout = report["judge"], report["holdout"]
        agree = [responses[f"{side}_{name}_stance"] == responses[f"{side}_stance"] for side in ("original", "aligned")]
        row = {
            "judge": name,
            "primary": name == primary,
            "holdout_examples": holdout["examples"],
            "holdout_accuracy": holdout["accuracy"],
            "holdout_macro_f1": holdout["macro_f1"],
            **{f"recall_{label}": value for label, value in holdout["recall"].items()},
            **{f"accuracy_{script}": value["accuracy"] for script, value in holdout["accuracy_by_script"].items()},
            "cv_accuracy": report.get("cv_accuracy", float("nan")),
            "agreement_with_primary": rate(pd.concat(agree)),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def write_aggregates(
    responses: str,
    accuracies: list[str],
    categories_csv: str,
    categories_md: str,
    defects_csv: str,
    defects_md: str,
    generalisation_csv: str,
    generalisation_md: str,
    judges_csv: str,
    judges_md: str,
    primary: str,
) -> None:
    """Stage: the category, defect, generalisation and judge tables (csv + markdown)."""
    table = read_responses(responses)
    write_table(categories_table(table), categories_csv, categories_md)
    write_table(defects_table(table), defects_csv, defects_md)
    write_table(generalisation_table(table), generalisation_csv, generalisation_md)
    write_table(judges_table(table, accuracies, primary), judges_csv, judges_md)
