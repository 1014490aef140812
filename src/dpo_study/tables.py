"""Comparison tables over all experiments, and the homework's submission file per experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dpo_study import atomic
from dpo_study.data import read_jsonl
from dpo_study.experiments import EXPERIMENT_PARAMS
from dpo_study.provenance import LIBRARIES

# Answers cut at max_new_tokens (no end of turn), over all prompts; then where the numbers come from.
TRUNCATION_COLUMNS = ["hit_max_new_tokens_before", "hit_max_new_tokens_after"]
PROVENANCE_COLUMNS = ["config_hash", "git_commit", *(f"{name}_version" for name in ("python", *LIBRARIES))]
EXPERIMENT_COLUMNS = [
    "experiment", *EXPERIMENT_PARAMS, "train_loss", "rewards_margins", "rewards_accuracies",
    "train_seconds", "support_rate_before", "support_rate_after", "mean_chars_before", "mean_chars_after",
    *TRUNCATION_COLUMNS, *PROVENANCE_COLUMNS,
]
# Columns that differ between two runs of the same study (the rest must not, on one machine).
TIMING_COLUMNS = ["train_seconds"]
RESPONSE_COLUMNS = [
    "experiment", "id", "set", "category", "prompt", "original_response", "aligned_response",
    "original_stance", "aligned_stance", "original_support_score", "aligned_support_score",
    "original_chars", "aligned_chars", "original_hit_max_new_tokens", "aligned_hit_max_new_tokens",
]


def support_rate(stances: pd.DataFrame) -> float:
    return float((stances["stance"] == "support").mean())


def side_by_side(base: pd.DataFrame, aligned: pd.DataFrame, experiment: str) -> pd.DataFrame:
    keep = ["id", "response", "stance", "support_score", "chars", "hit_max_new_tokens"]
    merged = base[["id", "set", "category", "prompt", *keep[1:]]].merge(
        aligned[keep], on="id", suffixes=("_original", "_aligned"), validate="one_to_one"
    )
    merged = merged.rename(
        columns={f"{c}_{side}": f"{side}_{c}" for c in keep[1:] for side in ("original", "aligned")}
    )
    merged.insert(0, "experiment", experiment)
    return merged[RESPONSE_COLUMNS]


def write_table(table: pd.DataFrame, csv_path: str, md_path: str) -> None:
    with atomic.atomic_path(csv_path) as temp:
        table.to_csv(temp, index=False)
    atomic.write_text(md_path, table.to_markdown(index=False, floatfmt=".4g") + "\n")


def read_stances(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)


def write_tables(
    base_stances: str,
    summaries: list[str],
    stances: list[str],
    experiments_csv: str,
    experiments_md: str,
    responses_csv: str,
    responses_md: str,
    experiments: list[dict],
) -> None:
    """Stage: ``experiments`` (name + parameters) pairs up, in order, with ``summaries`` and ``stances``."""
    base = read_stances(base_stances)
    base_test = base[base["set"] == "test"]
    rows, responses = [], []
    for experiment, summary_path, stances_path in zip(experiments, summaries, stances, strict=True):
        summary = json.loads(Path(summary_path).read_text())
        aligned = read_stances(stances_path)
        aligned_test = aligned[aligned["set"] == "test"]
        rows.append(
            {
                **experiment,
                "experiment": experiment["name"],
                "train_loss": summary["train_loss"],
                "rewards_margins": summary["rewards_margins"],
                "rewards_accuracies": summary["rewards_accuracies"],
                "train_seconds": summary["train_seconds"],
                "support_rate_before": support_rate(base_test),
                "support_rate_after": support_rate(aligned_test),
                "mean_chars_before": float(base_test["chars"].mean()),
                "mean_chars_after": float(aligned_test["chars"].mean()),
                "hit_max_new_tokens_before": int(base["hit_max_new_tokens"].sum()),
                "hit_max_new_tokens_after": int(aligned["hit_max_new_tokens"].sum()),
                **summary["provenance"],
            }
        )
        responses.append(side_by_side(base, aligned, experiment["name"]))
    write_table(pd.DataFrame(rows)[EXPERIMENT_COLUMNS], experiments_csv, experiments_md)
    write_table(pd.concat(responses, ignore_index=True), responses_csv, responses_md)


def write_submission(base_responses: str, aligned_responses: str, submission: str, experiment: dict) -> None:
    """Stage: the homework's submission JSON of one experiment (test prompts only)."""
    aligned = {r["id"]: r for r in read_jsonl(aligned_responses)}
    results = []
    for row in read_jsonl(base_responses):
        if row["set"] != "test":
            continue
        test_id = int(row["id"]) if row["id"].isdigit() else row["id"]
        results.append(
            {"id": test_id, "prompt": row["prompt"], "original_response": row["response"],
             "aligned_response": aligned[row["id"]]["response"]}
        )
    document = {name: experiment[name] for name in ("num_epoch", "data_size", "support_ratio")}
    document["results"] = results
    atomic.write_json(submission, document)
