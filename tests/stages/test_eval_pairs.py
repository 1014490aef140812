"""Held-out preference pairs (training rows an experiment did not train on) and training stability."""

import json

import pytest

from conftest import REPO
from dpo_study.stages.data import build_pairs, heldout_pairs, write_jsonl
from dpo_study.config.data_files import load_rows
from dpo_study.analysis.stability import loss_spikes
from dpo_study.config.settings import ExperimentParams
from dpo_study.stages.train import train_adapter
from test_train_guards import MODEL_SETTINGS, run_paths, training_settings

ROWS = [{"id": i, "prompt": f"Question {i}?", "support": f"Yes {i}.", "oppose": f"No {i}."} for i in range(1, 11)]


def test_heldout_pairs_are_the_rows_after_data_size_with_the_same_preference_rule():
    pairs = heldout_pairs(ROWS, data_size=6, support_ratio=0.5)
    assert [p["id"] for p in pairs] == [7, 8, 9, 10]
    assert [p["preferred"] for p in pairs] == ["support", "support", "oppose", "oppose"]  # int(4 * 0.5) support
    assert pairs[0]["chosen"][0]["content"] == "Yes 7." and pairs[0]["rejected"][0]["content"] == "No 7."
    assert not {p["id"] for p in pairs} & {p["id"] for p in build_pairs(ROWS, 6, 0.5)}
    assert heldout_pairs(ROWS, data_size=10, support_ratio=1) == []  # every row trained on


def test_loss_spikes_count_jumps_over_twice_the_recent_mean():
    assert loss_spikes([0.7, 0.6, 0.6, 0.5, 0.5, 0.4, 1.3, 0.4]) == 1  # 1.3 > 2 * mean(0.6 .. 0.4) = 1.04
    assert loss_spikes([0.7, 0.6, 0.6, 0.5, 0.5, 0.4, 1.0]) == 0
    assert loss_spikes([0.1, 5.0]) == 0  # fewer than 5 steps before: no baseline


@pytest.mark.slow
def test_training_evaluates_the_heldout_pairs(tmp_path, tiny_model):
    experiment = ExperimentParams(num_epoch=1, data_size=8, support_ratio=1.0, beta=0.1, lora_r=4, lora_alpha=8,
                                  learning_rate=2e-3, strategy="swap", seed=42)
    train = load_rows(REPO / "data/train.json", "train")
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(build_pairs(train, experiment.data_size, experiment.support_ratio), pairs)
    paths = run_paths(tmp_path / "run", pairs)
    train_adapter(manifest=str(tiny_model), experiment=experiment, training=training_settings(),
                  model_settings=MODEL_SETTINGS, train_rows=str(REPO / "data/train.json"), **paths)
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert summary["eval_pairs"] == len(train) - experiment.data_size
    assert 0 <= summary["eval_rewards_accuracies"] <= 1
    assert summary["eval_rewards_margins"] == summary["eval_rewards_margins"]  # a number, not NaN
    assert summary["loss_spikes"] >= 0 and summary["max_grad_norm"] > 0
