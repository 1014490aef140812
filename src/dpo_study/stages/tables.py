"""Comparison tables over all experiments, and the homework's submission file per experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from dpo_study.config import artifacts, atomic

from dpo_study.analysis import metrics
from dpo_study.stages.data import read_jsonl
from dpo_study.config.experiments import EXPERIMENT_PARAMS
from dpo_study.config.provenance import LIBRARIES
from dpo_study.analysis.statistics import rate

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


def sentence_encoder(model_path: str | None):
    """``encode(texts)`` -> unit-length embeddings from a local sentence-transformers folder (None:
    the bundled all-MiniLM-L6-v2). The parse-time checks (input_checks) have made sure that the
    packages are installed and that a model_path is a folder."""
    from dpo_study.stages.judge import load_sentence_encoder

    model = load_sentence_encoder(model_path)
    return lambda texts: model.encode(list(texts), normalize_embeddings=True, batch_size=64)


def measured(stances: pd.DataFrame, encode=None) -> pd.DataFrame:
    """A judged answer table with the text measures, defect and validity flags of every answer."""
    text_measures = metrics.response_metrics(stances)
    table = pd.concat([stances.drop(columns=[c for c in text_measures if c in stances]), text_measures], axis=1)
    table["tokens"] = table["new_tokens"]
    if "language" not in table:
        table["language"] = ""
    table["relevance"] = (metrics.relevance(list(table["prompt"]), list(table["response"].fillna("")),
                                            list(table["expected_script"]), encode)
                          if encode else float("nan"))
    table = pd.concat([table, metrics.defects(table)], axis=1)
    return pd.concat([table, metrics.validity(table)], axis=1)


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


def read_stances(paths: list[str], encode=None) -> pd.DataFrame:
    """The judged answers of every prompt set of one model, measured together (relevance contrasts
    each answer with all the model's prompts of its script)."""
    return measured(read_sets(paths, lambda path: pd.read_csv(path, dtype={"id": str, "language": str},
                                                              keep_default_na=False)), encode)


def read_sets(paths: list[str], read) -> pd.DataFrame:
    """The prompt sets' tables of one model, joined (test prompts first)."""
    return pd.concat([read(path) for path in paths], ignore_index=True)


def per_experiment(paths: list[str], prompt_sets: list[str]) -> list[list[str]]:
    """An experiment-major list of per-set files, one list per experiment."""
    size = len(prompt_sets)
    return [paths[start : start + size] for start in range(0, len(paths), size)]


def write_tables(
    base_stances: list[str],
    summaries: list[str],
    stances: list[str],
    rewards: list[str],
    experiments_csv: str,
    experiments_md: str,
    responses_csv: str,
    responses_md: str,
    experiment_records: list[dict],
    prompt_sets: list[str],
    relevance_model: str | None = None,
) -> None:
    """Stage: ``experiment_records`` (name + parameters) pairs up, in order, with ``summaries`` and,
    ``len(prompt_sets)`` files each, with ``stances`` and ``rewards`` (``base_stances``: one per set).
    ``relevance_model``: the sentence-transformers folder that scores each answer's relevance (None:
    the bundled all-MiniLM-L6-v2)."""
    encode = sentence_encoder(relevance_model)
    base = read_stances(base_stances, encode)
    base_test = base[base["set"] == "test"]
    rows, responses = [], []
    for experiment, summary_path, stances_paths, rewards_paths in zip(
            experiment_records, summaries, per_experiment(stances, prompt_sets), per_experiment(rewards, prompt_sets),
            strict=True):
        summary = json.loads(Path(summary_path).read_text())
        aligned = read_stances(stances_paths, encode)
        aligned_test = aligned[aligned["set"] == "test"]
        answer_rewards = read_sets(rewards_paths, lambda path: pd.read_csv(path, dtype={"id": str}))
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
