"""Bad config or input stops the run before any job, with a message that names the field.

The cases run the parse-time checks in-process (snakemake_helpers.parse_study: what common.smk runs,
on the config Snakemake builds); the tests after them go through the snakemake command line, for
what only it shows: the one-line "Invalid study input" error, warnings, and YAML that Snakemake reads.
"""

import pytest

from dpo_study.config.validation import ConfigError
from snakemake_helpers import parse_study, scheduled_jobs, snakemake, workdir_with_config


def test_the_demo_study_passes_the_in_process_checks(tmp_path):
    """The control for the cases below: without their change, the same path raises nothing."""
    study = parse_study(tmp_path, workdir_with_config(tmp_path, {}))
    assert study.model_name == "demo" and "homework_default" in study.by_name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"unknown_key": 1}, "unknown_key"),
        ({"defaults": {"support_ratio": 1.5}}, "support_ratio"),
        ({"experiments": [{"name": "a", "support_ratio": 1.5}]}, "support_ratio"),
        ({"experiments": [{"name": "a", "data_size": 0}]}, "data_size"),
        ({"experiments": [{"name": "a", "data_size": 500}]}, "data_size"),
        ({"experiments": [{"name": "a", "beta": 0}]}, "beta"),
        ({"experiments": [{"name": "a", "lora_r": 0}]}, "lora_r"),
        ({"experiments": [{"name": "a", "num_epoch": "three"}]}, "num_epoch"),
        ({"experiments": [{"name": "a"}, {"name": "a", "beta": 0.2}]}, "duplicate experiment name"),
        ({"experiments": [{"name": "a", "learning_rat": 0.1}]}, "learning_rat"),
        ({"data": {"train": "data/missing.json"}}, "missing.json"),
        ({"model": {"name": "./no/such/model"}}, "model.name"),
        ({"questions": [{"name": "Q1", "a": "homework_default", "b": "nope"}]}, "questions[0] (Q1).b: 'nope'"),
        ({"questions": [{"name": "Q4", "a": "homework_default", "b": "q1_support_ratio_1", "categories": ["no_such_category"]}]},
         "questions[0] (Q4).categories: ['no_such_category']"),
        ({"experiments": [{"name": "a", "strategy": "mix"}]}, "'mix' needs weights: set mix_weights"),
        ({"mix_weights": {"mix": 1}}, "mix_weights"),
        ({"experiments": [{"name": "a", "strategy": "balanced", "data_size": 10}]},
         "experiment 'a', field strategy: 'balanced' balances the stances of rows marked 'ambiguous: true'"),
        ({"data": {"probes": ["config/probes.yaml", "config/probes.yaml"]}}, "repeats an id of config/probes.yaml"),
        ({"judge": {"use": ["ngram", "oracle"]}}, "oracle"),
        ({"judge": {"use": ["ngram"], "primary": "embedding"}}, "judge.primary"),
        ({"judge": {"llm": {"backend": "endpoint"}}}, "judge.llm.url"),
        ({"judge": {"llm": {"backend": "endpoint", "url": "http://h", "api_key_env": "sk-123"}}}, "api_key_env"),
        ({"judge": {"holdout": "data/missing_holdout.json"}}, "missing_holdout.json"),
        ({"results": "../outside"}, "results = \"../outside\": must stay inside the working directory"),
        ({"data": {"probes": ["data/test.json"]}}, "data/test.json: row 0 (id 51): missing field 'category'"),
        ({"training": {"backend": "vllm"}}, "backend"),
        ({"training": {"recipe": "slow"}}, "recipe"),
        ({"training": {"per_device_train_batch_size": 3}}, "training.per_device_train_batch_size"),
        ({"generation": {"decode": "graph", "do_sample": True}}, "generation.decode"),
        ({"experiments": [{"name": "a", "beta": float("nan")}]}, "experiments[0].beta = nan: must be a finite number"),
        ({"defaults": {"seed": 2**32}}, "defaults.seed = 4294967296: must be a whole number ≥ 0 and ≤ 4294967295"),
        ({"results": ""}, 'results = "": must be non-empty text'),
        ({"data": {"system_prompt": "Be brief.<|eot_id|>"}}, "data.system_prompt: holds the chat-template control token <|eot_id|>"),
        ({"judge": {"use": ["ngram"], "primary": ""}}, 'judge.primary = "": must be non-empty text'),
        ({"questions": [{"name": "Q1", "a": "homework_default", "b": "homework_default"}]}, "'homework_default' is also a"),
        ({"training": {"loss_type": ["sigmoid", "dpo"]}}, "training.loss_type = [\"sigmoid\", \"dpo\"]: ['dpo'] not TRL loss types"),
        ({"judge": {"use": ["ngram"], "cv_folds": 100}}, "judge.cv_folds = 100"),
    ],
)
def test_rejected_before_any_job(tmp_path, overrides, message):
    config = workdir_with_config(tmp_path, overrides)
    with pytest.raises(ConfigError) as error:
        parse_study(tmp_path, config)
    assert message in str(error.value)
    assert not (tmp_path / "results").exists()


def test_bad_train_row_names_row_and_field(tmp_path, write_json):
    write_json("bad_train.json", [{"id": 1, "prompt": "q?", "support": "yes.", "oppose": ""}])
    config = workdir_with_config(tmp_path, {"data": {"train": "bad_train.json"}})
    result = snakemake(tmp_path, config, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "row 0 (id 1), field 'oppose'" in output


def test_config_error_is_one_readable_line_naming_the_file(tmp_path):
    config = workdir_with_config(tmp_path, {"experiments": [{"name": "a", "support_ratio": 1.5, "beta": 0}]})
    result = snakemake(tmp_path, config, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{config}: experiments[0].support_ratio (of \"a\") = 1.5: must be a number ≥ 0 and ≤ 1" in output
    assert f"{config}: experiments[0].beta (of \"a\") = 0: must be a number > 0" in output
    assert "Failed validating" not in output and "On instance" not in output


def test_probe_id_clashing_with_a_test_id_is_rejected_before_any_job(tmp_path, write_json):
    write_json("probes.json", [{"id": "51", "category": "other_style", "prompt": "Draw it like Disney?"}])
    config = workdir_with_config(tmp_path, {"data": {"probes": ["probes.json"]}})
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert "probes.json: row 0, field 'id' = \"51\": repeats an id of data/test.json" in result.stdout + result.stderr


def test_identical_experiments_warn_and_share_one_run(tmp_path):
    config = workdir_with_config(tmp_path, {"experiments": [{"name": "a"}, {"name": "b", "num_epoch": 3}], "questions": []})
    result = snakemake(tmp_path, config, "-n")
    assert "experiments 'a' and 'b' have identical parameters: they share one run" in result.stdout + result.stderr
    assert scheduled_jobs(result.stdout)["train_adapter"] == 1


def test_alias_bomb_in_the_config_is_refused_before_it_is_walked(tmp_path):
    config = workdir_with_config(tmp_path, {})
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9**9 values if walked
    config.write_text(config.read_text() + "\n".join(lines) + "\n")
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert f"{config}: not valid YAML at line" in result.stderr + result.stdout
    assert "an alias (*a0) is not allowed here" in result.stderr + result.stdout


def test_duplicate_key_in_the_config_is_refused(tmp_path):
    config = workdir_with_config(tmp_path, {})
    config.write_text(config.read_text() + "results: elsewhere\n")
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert "duplicate key 'results'" in result.stderr + result.stdout
