"""Summaries of the per-response table: per probe category, defects before vs after, generalisation
from the test prompts to each probe category, and the judges' own accuracy.

Everything is computed from ``responses.csv`` (one row per experiment and prompt, with the original
and aligned answer's measures side by side), so the figures can be traced back to single answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dpo_study.metrics import DEFECTS
from dpo_study.tables import write_table

# A test-prompt stance shift smaller than this is no effect to generalise from (transfer left blank).
MIN_TEST_SHIFT = 0.05
SIDES = (("before", "original"), ("after", "aligned"))


def read_responses(path: str) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"id": str, "category": str, "language": str})
    for side in ("original", "aligned"):
        for flag in ("within_limit", "language_match", "refusal", *DEFECTS):
            table[f"{side}_{flag}"] = table[f"{side}_{flag}"].astype("boolean")
    return table


def category_order(table: pd.DataFrame) -> list[str]:
    """The test prompts first, then probe categories in the order they first appear."""
    seen = list(dict.fromkeys(table["category"]))
    return sorted(seen, key=lambda c: c != "test")


def mean(values: pd.Series) -> float:
    values = values.dropna().astype(float)
    return float(values.mean()) if len(values) else float("nan")


def category_row(group: pd.DataFrame) -> dict:
    row = {"prompts": len(group)}
    for when, side in SIDES:
        row[f"support_rate_{when}"] = mean(group[f"{side}_stance"] == "support")
    for when, side in SIDES:
        row[f"oppose_rate_{when}"] = mean(group[f"{side}_stance"] == "oppose")
    for when, side in SIDES:
        row[f"neutral_rate_{when}"] = mean(group[f"{side}_stance"] == "neutral")
    for when, side in SIDES:
        row[f"mean_stance_score_{when}"] = mean(group[f"{side}_stance_score"])
    measures = [("mean_chars", "chars"), ("mean_tokens", "tokens"), ("within_limit_rate", "within_limit"),
                ("language_match_rate", "language_match"), ("refusal_rate", "refusal"),
                ("mean_repetition", "repetition")]
    for name, column in measures:
        for when, side in SIDES:
            row[f"{name}_{when}"] = mean(group[f"{side}_{column}"])
    for when, side in SIDES:
        row[f"hedged_rate_{when}"] = mean(group[f"{side}_hedges"] > 0)
    row["mean_implicit_reward"] = mean(group["aligned_implicit_reward"])
    return row


def categories_table(responses: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for experiment, by_experiment in responses.groupby("experiment", sort=False):
        for category in category_order(by_experiment):
            group = by_experiment[by_experiment["category"] == category]
            rows.append({"experiment": experiment, "category": category, **category_row(group)})
    return pd.DataFrame(rows)


def defects_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, defect and prompt set: how many answers have it before and after DPO, how many
    aligned answers have it where the original did not (new), and the reverse (fixed)."""
    rows = []
    for experiment, by_experiment in responses.groupby("experiment", sort=False):
        for defect in DEFECTS:
            for prompt_set, group in by_experiment.groupby("set", sort=False):
                before = group[f"original_{defect}"].fillna(False).astype(bool)
                after = group[f"aligned_{defect}"].fillna(False).astype(bool)
                rows.append({"experiment": experiment, "defect": defect, "set": prompt_set, "prompts": len(group),
                             "before": int(before.sum()), "after": int(after.sum()),
                             "new": int((after & ~before).sum()), "fixed": int((before & ~after).sum())})
    return pd.DataFrame(rows)


def generalisation_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and probe category: the mean stance shift (aligned - original stance score, from
    -2 to 2) against the shift on the test prompts; transfer = category shift / test shift."""
    rows = []
    for experiment, by_experiment in responses.groupby("experiment", sort=False):
        shift = by_experiment["aligned_stance_score"] - by_experiment["original_stance_score"]
        test = by_experiment["category"] == "test"
        test_shift = mean(shift[test])
        for category in category_order(by_experiment):
            if category == "test":
                continue
            in_category = by_experiment["category"] == category
            group = by_experiment[in_category]
            category_shift = mean(shift[in_category])
            rows.append({
                "experiment": experiment,
                "category": category,
                "prompts": int(in_category.sum()),
                "stance_shift": category_shift,
                "test_stance_shift": test_shift,
                "transfer": category_shift / test_shift + 0.0 if abs(test_shift) >= MIN_TEST_SHIFT else float("nan"),
                "support_rate_shift": mean(group["aligned_stance"] == "support") - mean(group["original_stance"] == "support"),
                "label_changed_rate": mean(group["aligned_stance"] != group["original_stance"]),
            })
    columns = ["experiment", "category", "prompts", "stance_shift", "test_stance_shift", "transfer",
               "support_rate_shift", "label_changed_rate"]
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
            "agreement_with_primary": mean(pd.concat(agree)),
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
