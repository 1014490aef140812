"""Comparison tables over all experiments, and the homework's submission file per experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from dpo_study.analysis import metrics
from dpo_study.analysis.statistics import rate
from dpo_study.config import artifacts, atomic
from dpo_study.config.artifacts import manifest_files
from dpo_study.config.experiments import EXPERIMENT_PARAMS
from dpo_study.config.provenance import LIBRARIES
from dpo_study.stages.data import read_jsonl
from dpo_study.stages.measures import answer_measures, read_measures

# Answers cut at max_new_tokens (no end of turn), over all prompts; then where the numbers come from.
TRUNCATION_COLUMNS = ["hit_max_new_tokens_before", "hit_max_new_tokens_after"]
PROVENANCE_COLUMNS = ["config_hash", "git_commit", *(f"{name}_version" for name in ("python", *LIBRARIES))]
EXPERIMENT_COLUMNS = [
    "experiment", *EXPERIMENT_PARAMS, "train_loss", "final_loss", "rewards_margins", "rewards_accuracies",
    # held-out pairs (training rows the experiment did not train on) and training stability
    "eval_rewards_accuracies", "eval_rewards_margins", "max_grad_norm", "loss_spikes",
    "train_seconds", "support_rate_before", "support_rate_after", "mean_chars_before", "mean_chars_after",
    # on the test prompts too: answers the primary judge labels neutral, answers within the length limit
    "neutral_rate_before", "neutral_rate_after", "within_limit_rate_before", "within_limit_rate_after",
    # stance rates count valid answers only (metrics.validity); this is the share that was valid
    "valid_rate_before", "valid_rate_after",
    "mean_implicit_reward", "perplexity_before", "perplexity_after",
    *TRUNCATION_COLUMNS, *PROVENANCE_COLUMNS,
]
# Columns that differ between two runs of the same study (the rest must not, on one machine).
TIMING_COLUMNS = ["train_seconds"]
RESPONSE_COLUMNS = [
    "experiment", "id", "set", "category", "prompt", "original_response", "aligned_response",
    "original_stance", "aligned_stance", "original_support_score", "aligned_support_score",
    "original_chars", "aligned_chars",
]
# Per prompt, after RESPONSE_COLUMNS; then each of ANSWER_COLUMNS as original_<c> and aligned_<c>,
# then each judge's <judge>_stance and <judge>_score the same way.
PROMPT_COLUMNS = ["language", "length_limit", "expected_script", "asks_for_balance"]
ANSWER_COLUMNS = [
    "stance_score", "tokens", "hit_max_new_tokens", "within_limit", "answer_script", "language_match",
    "hedges", "refusal", "distinct_1", "distinct_2", "repetition", *metrics.DEFECTS, "relevance",
    *metrics.INVALID_REASONS[1:], "valid", "implicit_reward", "perplexity",
]


def stance_rate(stances: pd.DataFrame, label: str) -> float:
    """The share of valid answers judged ``label``."""
    return rate((stances["stance"] == label).where(stances["valid"]))


def measured(stances: pd.DataFrame, measures: pd.DataFrame | None = None, language: bool = True) -> pd.DataFrame:
    """A judged answer table joined with its answers' measures (``dpo_study.stages.measures``; computed here,
    relevance not assessed, when not given), and the defects that need the judge's stance."""
    if measures is None:
        measures = answer_measures(stances)
    own = [c for c in measures.columns if c != "id"]
    if set(stances["id"]) != set(measures["id"]) or len(stances) != len(measures):
        raise ValueError("the measures do not cover the judged answers one to one (ids differ)")
    table = stances.drop(columns=[c for c in own if c in stances]).merge(measures, on="id", how="left",
                                                                         validate="one_to_one")
    if language and "language" not in table:
        table["language"] = ""
    flags = metrics.defects(table)
    return pd.concat([table.drop(columns=[c for c in flags.columns if c in table]), flags], axis=1)


def judge_columns(table: pd.DataFrame) -> list[str]:
    """Each judge's ``<judge>_stance`` and ``<judge>_score``, as judge_responses writes them."""
    judges = [c.removesuffix("_stance") for c in table.columns
              if c.endswith("_stance") and f"{c.removesuffix('_stance')}_score" in table.columns]
    return [f"{judge}_{part}" for judge in judges for part in ("stance", "score")]


def side_by_side(base: pd.DataFrame, aligned: pd.DataFrame, experiment: str, rewards: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt: the prompt, then each answer measure for the base (original) and aligned model."""
    from_rewards = ["implicit_reward", "perplexity"]
    per_answer = ["response", "stance", "support_score", "chars",
                  *[c for c in ANSWER_COLUMNS if c not in from_rewards], *judge_columns(aligned)]
    merged = base[["id", "set", "category", "prompt", *PROMPT_COLUMNS, *per_answer]].merge(
        aligned[["id", *per_answer]], on="id", suffixes=("_original", "_aligned"), validate="one_to_one"
    )
    merged = merged.rename(
        columns={f"{c}_{side}": f"{side}_{c}" for c in per_answer for side in ("original", "aligned")}
    )
    reward_columns = [f"{side}_{c}" for c in from_rewards for side in ("original", "aligned")]
    merged = merged.merge(rewards.reindex(columns=["id", *reward_columns]), on="id", how="left", validate="one_to_one")
    merged.insert(0, "experiment", experiment)
    answer_columns = [f"{side}_{c}" for c in [*ANSWER_COLUMNS, *judge_columns(aligned)] for side in ("original", "aligned")]
    return merged[[*RESPONSE_COLUMNS, *PROMPT_COLUMNS, *answer_columns]]


def write_table(table: pd.DataFrame, csv_path: str, md_path: str, md_columns: list[str] | None = None) -> None:
    """The table as CSV, and as markdown (only ``md_columns`` where a full table is too wide to read)."""
    with atomic.atomic_path(csv_path) as temp:
        table.to_csv(temp, index=False)
    readable = table[md_columns] if md_columns else table
    # tabulate writes n/a for None (pandas would write nan for a missing value)
    rows = readable.astype(object).where(readable.notna(), None).values.tolist()
    text = tabulate(rows, headers=list(readable.columns), tablefmt="pipe", floatfmt=".4g", missingval="n/a")
    atomic.write_text(md_path, text + "\n")


def perplexities(rewards: pd.DataFrame, ids) -> dict:
    """Median perplexity under the base model of the test answers before and after DPO (the median:
    one looping answer can have a perplexity thousands of times the others')."""
    test = rewards[rewards["id"].isin(ids)]
    return {f"perplexity_{when}": float(test[f"{side}_perplexity"].median()) if f"{side}_perplexity" in test
            else float("nan") for when, side in (("before", "original"), ("after", "aligned"))}


def read_stances(stances_path: str) -> pd.DataFrame:
    return pd.read_csv(stances_path, dtype={"id": str, "language": str}, keep_default_na=False)


def read_model(answers: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One model's judged and measured answers of every prompt set (``answers``: set -> its files), in order."""
    parts = []
    for prompt_set, files in answers.items():
        try:
            parts.append(measured(read_stances(files["stances"]), read_measures(files["measures"]), language=False))
        except ValueError as error:
            raise ValueError(f"{files['measures']} (prompt set {prompt_set}) against {files['stances']}: {error}") \
                from None
    table = pd.concat(parts, ignore_index=True)
    if "language" not in table:  # where no prompt set states one
        table["language"] = ""
    return table


def read_rewards(answers: dict[str, dict[str, str]]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(files["rewards"], dtype={"id": str}) for files in answers.values()],
                     ignore_index=True)


def write_tables(
    files: list[str],
    experiments_csv: str,
    experiments_md: str,
    responses_csv: str,
    responses_md: str,
    study: dict,
) -> None:
    """Stage: the experiment and response tables, joined by name from ``study`` (the study manifest:
    ``Study.tables_manifest``: per experiment its record, run folder, summary and per prompt set its
    stances, measures and rewards; the base model's stances and measures per set). ``files``: the
    job's inputs, which must hold every file the manifest names."""
    missing = sorted(set(manifest_files(study)) - set(files))
    if missing:
        raise ValueError(f"the study manifest names files that are not inputs of the tables job: {missing[:3]}")
    base = read_model(study["base"]["answers"])
    base_test = base[base["set"] == "test"]
    rows, responses = [], []
    for entry in study["experiments"]:
        experiment, summary_path = entry["record"], entry["summary"]
        summary = json.loads(Path(summary_path).read_text())
        aligned = read_model(entry["answers"])
        aligned_test = aligned[aligned["set"] == "test"]
        answer_rewards = read_rewards(entry["answers"])
        rows.append(
            {
                **experiment,
                "experiment": experiment["name"],
                "train_loss": summary["train_loss"],
                **{c: summary.get(c, float("nan")) for c in ("final_loss", "eval_rewards_accuracies",
                                                              "eval_rewards_margins", "max_grad_norm", "loss_spikes")},
                "rewards_margins": summary["rewards_margins"],
                "rewards_accuracies": summary["rewards_accuracies"],
                "train_seconds": summary["train_seconds"],
                "support_rate_before": stance_rate(base_test, "support"),
                "support_rate_after": stance_rate(aligned_test, "support"),
                "mean_chars_before": float(base_test["chars"].mean()),
                "mean_chars_after": float(aligned_test["chars"].mean()),
                "neutral_rate_before": stance_rate(base_test, "neutral"),
                "neutral_rate_after": stance_rate(aligned_test, "neutral"),
                "within_limit_rate_before": rate(base_test["within_limit"]),
                "within_limit_rate_after": rate(aligned_test["within_limit"]),
                "valid_rate_before": rate(base_test["valid"]),
                "valid_rate_after": rate(aligned_test["valid"]),
                "mean_implicit_reward": float(answer_rewards.loc[answer_rewards["id"].isin(aligned_test["id"]),
                                                                 "aligned_implicit_reward"].mean()),
                **perplexities(answer_rewards, aligned_test["id"]),
                "hit_max_new_tokens_before": int(base["hit_max_new_tokens"].sum()),
                "hit_max_new_tokens_after": int(aligned["hit_max_new_tokens"].sum()),
                **summary["provenance"],
            }
        )
        responses.append(side_by_side(base, aligned, experiment["name"], answer_rewards))
    write_table(pd.DataFrame(rows)[EXPERIMENT_COLUMNS], experiments_csv, experiments_md)
    write_table(pd.concat(responses, ignore_index=True), responses_csv, responses_md, md_columns=RESPONSE_COLUMNS)


def write_submission(base_responses: str, aligned_responses: str, submission: str, experiment: dict) -> None:
    """Stage: the homework's submission JSON of one experiment (test prompts only)."""
    base_ids = [r["id"] for r in artifacts.read_jsonl_checked(base_responses)]
    aligned = {r["id"]: r for r in artifacts.read_responses(aligned_responses, base_ids, base_responses)}
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
