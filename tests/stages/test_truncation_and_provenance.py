"""Answers cut at max_new_tokens are flagged in the tables; tables say what produced them."""

import json
import shutil
import subprocess

import pandas as pd

from conftest import REPO, default_settings
from dpo_study.config import provenance
from dpo_study.config.artifacts import manifest_files
from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT
from dpo_study.config.experiments import EXPERIMENT_PARAMS
from dpo_study.config.settings import GenerationSettings, ModelSettings
from dpo_study.runtime.modeling import load_base, load_tokenizer, read_manifest
from dpo_study.stages.data import prompt_records
from dpo_study.stages.generate import generate_answers
from dpo_study.stages.measures import answer_measures
from dpo_study.stages.tables import EXPERIMENT_COLUMNS, RESPONSE_COLUMNS, write_tables

GENERATION = GenerationSettings(max_new_tokens=2, do_sample=False, temperature=1.0, top_p=1.0, batch_size=4,
                                decode="auto", seed=0)


def test_answer_without_end_of_turn_is_cut_and_flagged(tiny_model):
    manifest = read_manifest(tiny_model)
    settings = default_settings(ModelSettings, load_in_4bit=False)
    tokenizer, model = load_tokenizer(manifest, settings), load_base(manifest, settings)
    test_rows = json.loads((REPO / "data/test.json").read_text())
    records = prompt_records(test_rows, [], DEFAULT_SYSTEM_PROMPT)
    rows = generate_answers(model, tokenizer, records, GENERATION)
    longer = generate_answers(model, tokenizer, records, GENERATION.replace(max_new_tokens=6))
    assert any(r["hit_max_new_tokens"] for r in rows)  # a barely trained model rarely ends a turn in 2 tokens
    for row, free in zip(rows, longer):
        if row["hit_max_new_tokens"]:  # cut: with more room, the same (greedy) answer goes on
            assert row["new_tokens"] == GENERATION.max_new_tokens < free["new_tokens"]
        else:  # ended by itself: more room changes nothing
            assert (row["response"], row["new_tokens"]) == (free["response"], free["new_tokens"])


def stances(path, cut: list[bool]):
    table = pd.DataFrame(
        {
            "id": [str(i) for i in range(51, 51 + len(cut))],
            "set": "test",
            "category": "test",
            "system": DEFAULT_SYSTEM_PROMPT,
            "prompt": "q?",
            "response": ["an answer that goes on" if c else "done." for c in cut],
            "new_tokens": [128 if c else 3 for c in cut],
            "hit_max_new_tokens": cut,
            "support_score": 0.7,
            "stance_score": 0.4,
            "stance": "support",
            "ngram_stance": "support",
            "ngram_score": 0.4,
            "chars": 5,
        }
    )
    table.to_csv(path, index=False)
    return str(path)


def test_tables_count_cut_answers_and_record_provenance(tmp_path):
    record = provenance.record()
    summary = tmp_path / "train_summary.json"
    summary.write_text(json.dumps({"train_loss": 0.5, "rewards_margins": 0.1, "rewards_accuracies": 1.0,
                                   "train_seconds": 3.0, "provenance": record}))
    params = {"num_epoch": 3, "data_size": 50, "support_ratio": 0.0, "beta": 0.1, "lora_r": 16, "lora_alpha": 16,
              "learning_rate": 1e-4, "strategy": "swap", "seed": 42}
    out = {name: str(tmp_path / name) for name in ("e.csv", "e.md", "r.csv", "r.md")}
    rewards = tmp_path / "rewards.csv"
    pd.DataFrame({"id": ["51", "52", "53"], "original_implicit_reward": 0.0, "aligned_implicit_reward": 0.1}).to_csv(
        rewards, index=False)
    base = {"stances": stances(tmp_path / "base.csv", [True, False, False])}
    aligned = {"stances": stances(tmp_path / "aligned.csv", [True, True, False]), "rewards": str(rewards)}
    for files in (base, aligned):  # the measure job's file (relevance not assessed: no encoder here)
        files["measures"] = files["stances"].replace(".csv", ".parquet")
        answer_measures(pd.read_csv(files["stances"], dtype={"id": str})).to_parquet(files["measures"])
    study = {"base": {"answers": {"test": base}},
             "experiments": [{"record": {"name": "x", **params, "config_hash": "0123456789ab"}, "run": str(tmp_path),
                              "summary": str(summary), "answers": {"test": aligned}}]}
    write_tables(
        files=manifest_files(study),
        experiments_csv=out["e.csv"], experiments_md=out["e.md"], responses_csv=out["r.csv"], responses_md=out["r.md"],
        study=study,
    )
    experiments = pd.read_csv(out["e.csv"])
    assert list(experiments.columns) == EXPERIMENT_COLUMNS
    assert list(experiments.columns[:10]) == ["experiment", *EXPERIMENT_PARAMS]  # the listed columns stay first
    row = experiments.iloc[0]
    assert (row["hit_max_new_tokens_before"], row["hit_max_new_tokens_after"]) == (1, 2)
    assert row["config_hash"] == "0123456789ab" and row["git_commit"] == record["git_commit"]
    assert row["torch_version"] == record["torch_version"] and row["trl_version"] == record["trl_version"]
    responses = pd.read_csv(out["r.csv"])
    assert list(responses.columns[: len(RESPONSE_COLUMNS)]) == RESPONSE_COLUMNS
    assert list(responses["aligned_hit_max_new_tokens"]) == [True, True, False]


def test_git_commit_is_the_checkout_or_honestly_unknown(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = provenance.git_commit()
    if head.returncode == 0:
        assert commit.removesuffix("+dirty") == head.stdout.strip()
    else:
        assert commit == "unknown (not a git checkout)"
    outside = tmp_path / "provenance.py"
    shutil.copy(provenance.__file__, outside)
    assert provenance.git_commit(outside) == "unknown (not a git checkout)"


def test_config_hash_follows_what_shapes_the_results(tmp_path):
    train = tmp_path / "train.json"
    train.write_text("[1]")
    config = {"model": {"name": "demo"}, "training": {"beta_x": 1}, "data": {"train": str(train), "probes": []},
              "experiments": [{"name": "a"}], "questions": []}
    params = {"beta": 0.1}
    first = provenance.experiment_config_hash(params, config)
    reordered = {"data": config["data"], "training": config["training"], "model": config["model"]}
    assert provenance.experiment_config_hash(params, reordered) == first
    assert provenance.experiment_config_hash(params, {**config, "experiments": [], "questions": [{"name": "Q"}]}) == first
    assert provenance.experiment_config_hash({"beta": 0.2}, config) != first
    assert provenance.experiment_config_hash(params, {**config, "generation": {"max_new_tokens": 64}}) != first
    train.write_text("[2]")  # same file name, new content
    assert provenance.experiment_config_hash(params, config) != first
