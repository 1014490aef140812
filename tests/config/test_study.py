"""load_study: the whole study loaded and checked without Snakemake, and what the rules ask of it."""

import pytest
import yaml

from conftest import REPO, demo_config, load_demo_study
from dpo_study.config.settings import ModelSettings, NgramJudgeSettings
from dpo_study.config.study import SETTINGS_GROUPS
from dpo_study.config.validation import ConfigError

DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())


def test_demo_study_holds_runs_data_keys_judges_and_paths():
    config = demo_config(experiments=[
        {"name": "a"}, {"name": "b", "num_epoch": 1}, {"name": "c", "support_ratio": 1},
        {"name": "p", "strategy": "on_policy"},
    ], questions=[])
    study = load_demo_study(config)
    assert config["training"]["checkpoint_steps"] == 50  # the schema's defaults filled in
    assert [e.name for e in study.experiments] == ["a", "b", "c", "p"]
    assert set(study.runs) == {e.key for e in study.experiments}
    assert study.by_name["b"].params["num_epoch"] == 1
    # a and b differ only in training: one data key; its params are found by key, not by a search.
    a, b, c, p = study.experiments
    assert a.data_key == b.data_key != c.data_key
    assert study.data_params(a.data_key) == {"data_size": a.params["data_size"], "support_ratio": 0.0,
                                             "strategy": "swap"}
    with pytest.raises(KeyError, match="no experiment uses the data parameters"):
        study.data_params("data_size~1_support_ratio~0_strategy~swap")
    assert study.judges == DEMO["judge"]["use"] and study.primary_judge == DEMO["judge"]["use"][0]
    assert "in_distribution" in study.probe_categories
    # Paths: each holds the keys of the settings that shape it (what differs from the schema's defaults).
    assert study.keys == {
        "model": "load_in_4bit~False", "demo_model": "default",
        "training": "per_device_train_batch_size~8_gradient_accumulation_steps~1_gradient_checkpointing~False",
        "generation": "default", "judge": "use~ngram,embedding,llm"}
    assert study.manifest == "results/models/demo-default.json"
    model = "results/demo-default/model-load_in_4bit~False"
    assert study.model_results == model
    run = f"{model}/runs/training-{study.keys['training']}"
    answers = f"{model}/base/generation-default"
    assert study.pairs_file(a.key) == f"results/pairs/{a.data_key}.jsonl"
    assert study.pairs_file(p.key) == f"{answers}/pairs/{p.data_key}.jsonl"
    assert study.pairs_inputs(p.data_key)["base_responses"] == f"{answers}/train_responses.jsonl"
    assert "base_responses" not in study.pairs_inputs(a.data_key)
    assert study.checkpoint_dir(a.key) == f"{run}/{a.key}/checkpoints"
    assert study.prompt_sets == {"test": "data/test.json", "probes": "config/probes.yaml"}
    assert study.base_stances() == [f"{answers}/judge-use~ngram,embedding,llm/stances/{s}.csv" for s in ("test", "probes")]
    assert study.run_stances()[2] == f"{run}/{b.key}/generation-default/judge-use~ngram,embedding,llm/stances/test.csv"
    assert study.run_rewards()[3] == f"{run}/{b.key}/generation-default/rewards/probes.csv"
    assert study.aligned_responses("c") == f"{run}/{c.key}/generation-default/responses/test.jsonl"
    assert study.judge_files()[0] == "results/judge/judge-use~ngram,embedding,llm/ngram.joblib"
    assert "results/submissions/p.json" in study.all_outputs()
    assert [r["name"] for r in study.experiment_records()] == ["a", "b", "c", "p"]


def test_settings_groups_are_separate_and_complete():
    study = load_demo_study()
    groups = {name: study.settings_group(name, judge="ngram") for name in SETTINGS_GROUPS}
    assert groups["model"] == ModelSettings(False, study.config["model"]["load_in_4bit"],
                                            study.config["model"]["max_seq_length"], study.config["training"]["recipe"])
    # The training group is the config's training section and the one named addition, max_length.
    assert groups["training"].to_dict() == {**study.config["training"],
                                            "max_length": study.config["model"]["max_seq_length"]}
    assert groups["training"].warmup_ratio == study.config["training"]["warmup_ratio"]
    assert groups["generation"].to_dict() == study.config["generation"]
    assert groups["demo_model"].to_dict() == study.config["demo_model"]
    assert groups["judge"].cv_folds == study.config["judge"]["cv_folds"]
    # Built once: the Study hands out the same objects.
    assert study.training_settings is study.settings_group("training")
    # Only a judge that runs the base model carries the model settings.
    assert groups["judge"].settings == NgramJudgeSettings()
    llm = load_demo_study(demo_config(judge={**DEMO["judge"], "use": ["ngram", "llm"]}))
    assert llm.judge_runs_model("llm")
    assert llm.judge_settings("llm").model_settings == llm.model_settings


@pytest.mark.parametrize(("overrides", "message"), [
    ({"results": "/tmp/x"}, "inside the working directory"),
    ({"experiments": [{"name": "a", "data_size": 500}]}, "experiment 'a', field data_size: 500 is outside 1..60 (data/train.json has 60 rows)"),
    ({"judge": {"use": ["ngram"], "primary": "embedding"}}, "judge.primary: 'embedding' is not one of judge.use"),
    ({"questions": [{"name": "Q1", "a": "homework_default", "b": "nope"}]}, "questions[0] (Q1).b: 'nope'"),
    ({"training": {"per_device_train_batch_size": 3}}, "training.per_device_train_batch_size"),
    ({"data": {**DEMO["data"], "probes": ["config/probes.yaml", "config/probes.yaml"]}},
     "config/probes.yaml: row 0, field 'id' = \"para_51\": repeats an id of config/probes.yaml"),
])
def test_bad_study_raises_a_config_error(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_demo_study(demo_config(**overrides))
    assert message in str(error.value)


def test_checks_run_in_order_schema_first():
    """A config with a schema error and a bad results folder reports the schema error (the first check)."""
    with pytest.raises(ConfigError, match="support_ratio"):
        load_demo_study(demo_config(results="/tmp/x", defaults={"support_ratio": 2}))


def test_prompt_sets_are_the_test_prompts_then_each_probe_file_by_its_stem():
    from dpo_study.config.study import prompt_sets

    assert prompt_sets("data/test.json", ["config/probes.yaml", "mine/extra.json"]) == {
        "test": "data/test.json", "probes": "config/probes.yaml", "extra": "mine/extra.json"}
    with pytest.raises(ConfigError, match=r"data.probes: 'b/probes.json' names the prompt set 'probes', which is taken"):
        prompt_sets("data/test.json", ["a/probes.yaml", "b/probes.json"])
    with pytest.raises(ConfigError, match="names the prompt set 'test'"):
        prompt_sets("data/test.json", ["more/test.yaml"])
