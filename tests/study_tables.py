"""A small finished study's two tables, written by hand, for the report/plots/findings tests.

Ten test prompts (3 supporting before DPO) and two probe categories of two prompts each. Every
experiment's support rate after DPO is given below; responses.csv agrees with experiments.csv.
The study has a seed group (q1, 3 seeds), a one-step difference (q2 vs homework_default: 0.1) and
a beta × lora_r grid, plus columns the report does not know (a metric and a text column).
"""

import pandas as pd

from dpo_study.config.experiments import EXPERIMENT_PARAMS

DEFAULTS = {"num_epoch": 3, "data_size": 50, "support_ratio": 0.0, "beta": 0.1, "lora_r": 16, "lora_alpha": 16,
            "learning_rate": 1e-4, "strategy": "swap", "seed": 42}
TEST_PROMPTS = 10
BASE_SUPPORTING = 3
PROBES = {"in_distribution": ["p01", "p02"], "other_style": ["p03", "p04"]}
BASE_CHARS = 80

# name -> (parameters that differ from DEFAULTS, supporting test answers after DPO, mean characters after)
EXPERIMENTS = {
    "homework_default": ({}, 0, 90),
    "q1_seed~1": ({"support_ratio": 1.0, "seed": 1}, 9, 95),
    "q1_seed~2": ({"support_ratio": 1.0, "seed": 2}, 8, 97),
    "q1_seed~3": ({"support_ratio": 1.0, "seed": 3}, 9, 96),
    "q2_num_epoch_1": ({"num_epoch": 1}, 1, 85),
    "bs_beta~0.05_lora_r~8": ({"support_ratio": 1.0, "beta": 0.05, "lora_r": 8}, 5, 100),
    "bs_beta~0.5_lora_r~8": ({"support_ratio": 1.0, "beta": 0.5, "lora_r": 8}, 9, 92),
    "bs_beta~0.05_lora_r~16": ({"support_ratio": 1.0, "beta": 0.05}, 6, 101),
    "bs_beta~0.5_lora_r~16": ({"support_ratio": 1.0, "beta": 0.5}, 8, 93),
}
QUESTIONS = [
    {"name": "Q1", "title": "support_ratio 0 vs 1", "a": "homework_default", "b": "q1_seed~2"},
    {"name": "Q2", "title": "num_epoch 1 vs 3", "a": "q2_num_epoch_1", "b": "homework_default"},
    {"name": "Q4", "title": "probes", "a": "homework_default", "b": "q1_seed~1", "categories": "all"},
]


def response_rows(name: str, supporting: int, chars: int) -> list[dict]:
    rows = []
    for index in range(TEST_PROMPTS):
        rows.append({"id": str(51 + index), "set": "test", "category": "test",
                     "supported_before": index < BASE_SUPPORTING, "supported_after": index < supporting})
    probe_support = 2 if supporting >= 5 else 0  # probes follow the test prompts' direction
    for category, ids in PROBES.items():
        for index, probe_id in enumerate(ids):
            rows.append({"id": probe_id, "set": "probe", "category": category, "supported_before": index == 0,
                         "supported_after": index < probe_support})
    out = []
    for row in rows:
        before = "support" if row.pop("supported_before") else "oppose"
        after = "support" if row.pop("supported_after") else "oppose"
        out.append({
            "experiment": name, **row, "prompt": f"Is prompt {row['id']} fine?",
            "original_response": f"<b>{before}</b> answer to {row['id']}.", "aligned_response": f"{after} answer.",
            "original_stance": before, "aligned_stance": after,
            "original_support_score": 0.9 if before == "support" else 0.1,
            "aligned_support_score": 0.8 if after == "support" else 0.2,
            "original_chars": BASE_CHARS, "aligned_chars": chars,
            "original_too_long": False, "aligned_too_long": chars > 95,
        })
    return out


def experiments_table() -> pd.DataFrame:
    rows = []
    for name, (params, supporting, chars) in EXPERIMENTS.items():
        rows.append({
            "experiment": name, **{**DEFAULTS, **params},
            "train_loss": 0.5 - supporting / 100, "rewards_margins": supporting / 10, "rewards_accuracies": 1.0,
            "train_seconds": 12.5,
            "support_rate_before": BASE_SUPPORTING / TEST_PROMPTS, "support_rate_after": supporting / TEST_PROMPTS,
            "mean_chars_before": float(BASE_CHARS), "mean_chars_after": float(chars),
            "defects_too_long_before": 1, "defects_too_long_after": int(chars > 95),
            "git_commit": "abc123",
        })
    table = pd.DataFrame(rows)
    return table[["experiment", *EXPERIMENT_PARAMS, *[c for c in table.columns if c not in EXPERIMENT_PARAMS
                                                       and c != "experiment"]]]


def write_study(folder) -> tuple[str, str]:
    """experiments.csv and responses.csv of the study in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    experiments, responses = folder / "experiments.csv", folder / "responses.csv"
    experiments_table().to_csv(experiments, index=False)
    pd.DataFrame([r for name, (_, s, c) in EXPERIMENTS.items() for r in response_rows(name, s, c)]).to_csv(
        responses, index=False)
    return str(experiments), str(responses)
