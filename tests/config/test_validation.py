"""Bad input is rejected with one line naming the file, the field (and row/id) and what is allowed.

These call load_study (what workflow/rules/common.smk runs at parse time) and the checks it runs;
tests/workflow/test_config_errors.py shows through the snakemake command line that they stop a run before any job.
"""

import json
import os

import pytest
import yaml

from conftest import REPO
from dpo_study.config.data_files import load_rows
from dpo_study.config.validation import ConfigError
from dpo_study.config.model import check_model_name
from dpo_study.config.study import load_study
from dpo_study.config.validation import check_prompt_ids, validate_config

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def study_file(tmp_path, overrides: dict):
    """config/demo.yaml with top-level keys replaced, written to study.yaml."""
    config = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    config.update(overrides)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check_study(path):
    """The parse-time checks of a study file, run as common.smk runs them (from the checkout, where
    the demo's data paths are)."""
    config = yaml.safe_load(path.read_text())
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        study = load_study(config, [path])
    finally:
        os.chdir(cwd)
    return study.config, study.experiments


def rejected(tmp_path, overrides) -> str:
    with pytest.raises(ConfigError) as error:
        check_study(study_file(tmp_path, overrides))
    message = str(error.value)
    assert "study.yaml" in message or "experiment" in message, message
    assert "Failed validating" not in message and "schema[" not in message  # no raw jsonschema dump
    return message


# Each case: config overrides, and the fragments its message must hold (field, value, what is allowed).
CONFIG_CASES = {
    "unknown top-level key": ({"modle": {"name": "demo"}}, ["study.yaml: the config", "unknown key 'modle'", "did you mean 'model'", "allowed:"]),
    "unknown experiment key (typo)": ({"experiments": [{"name": "a", "learning_rat": 0.1}]}, ["experiments[0]", '"a"', "'learning_rat'", "did you mean 'learning_rate'"]),
    "token in the config": ({"model": {"name": "demo", "hf_token": "x"}}, ["model", "unknown key 'hf_token'"]),
    "wrong type: num_epoch as text": ({"experiments": [{"name": "a", "num_epoch": "three"}]}, ["experiments[0].num_epoch", '= "three"', "must be a whole number ≥ 1", "got text"]),
    "wrong type: trust_remote_code as text": ({"model": {"name": "demo", "trust_remote_code": "yes"}}, ["model.trust_remote_code", "must be true or false"]),
    "wrong type: probes not a list": ({"data": {"probes": "data/probes_small.json"}}, ["data.probes", "must be a list"]),
    "support_ratio above 1": ({"experiments": [{"name": "a", "support_ratio": 1.5}]}, ["experiments[0].support_ratio", "= 1.5", "≤ 1"]),
    "support_ratio below 0": ({"defaults": {"support_ratio": -0.1}}, ["defaults.support_ratio", "= -0.1", "≥ 0"]),
    "num_epoch 0": ({"experiments": [{"name": "a", "num_epoch": 0}]}, ["experiments[0].num_epoch", "≥ 1"]),
    "data_size 0": ({"experiments": [{"name": "a", "data_size": 0}]}, ["experiments[0].data_size", "≥ 1"]),
    "beta 0": ({"experiments": [{"name": "a", "beta": 0}]}, ["experiments[0].beta", "= 0", "must be a number > 0"]),
    "beta negative inside a grid": ({"grids": [{"name": "g", "beta": [0.1, -1]}]}, ["grids[0].beta[1]", '"g"', "= -1", "> 0"]),
    "grid value of the wrong type": ({"grids": [{"name": "g", "lora_r": "eight"}]}, ["grids[0].lora_r", "whole number ≥ 1 and ≤ 1024 or a non-empty list", "got text"]),
    "lora_r 0": ({"experiments": [{"name": "a", "lora_r": 0}]}, ["experiments[0].lora_r", "≥ 1"]),
    "lora_r not whole": ({"experiments": [{"name": "a", "lora_r": 2.5}]}, ["experiments[0].lora_r", "= 2.5", "whole number"]),
    "learning_rate 0": ({"experiments": [{"name": "a", "learning_rate": 0}]}, ["experiments[0].learning_rate", "> 0"]),
    "unknown strategy": ({"experiments": [{"name": "a", "strategy": "shuffle"}]}, ["experiments[0].strategy", '"shuffle"', 'one of "swap"']),
    "experiment without a name": ({"experiments": [{"beta": 0.2}]}, ["experiments[0]", "missing key 'name'"]),
    "name with a space": ({"experiments": [{"name": "my run"}]}, ["experiments[0].name", '"my run"', "letters, digits"]),
    "max_new_tokens 0": ({"generation": {"max_new_tokens": 0}}, ["generation.max_new_tokens", "≥ 1"]),
    "checkpoint_steps negative": ({"training": {"checkpoint_steps": -1}}, ["training.checkpoint_steps", "≥ 0"]),
    "duplicate experiment names": ({"experiments": [{"name": "a"}, {"name": "a", "beta": 0.2}]}, ["duplicate experiment name 'a'"]),
    "grid name clashes with an experiment": ({"experiments": [{"name": "g"}], "grids": [{"name": "g", "beta": 0.2}]}, ["duplicate experiment name 'g'"]),
    "no experiment at all": ({"experiments": [], "grids": []}, ["declares no experiment"]),
    "results as an absolute path": ({"results": "/tmp/elsewhere"}, ["results", "/tmp/elsewhere", "inside the working directory"]),
    "results escaping with ..": ({"results": "results/../../out"}, ["results", "'..' leaves it"]),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_config_is_rejected_with_a_readable_message(tmp_path, case):
    overrides, fragments = CONFIG_CASES[case]
    message = rejected(tmp_path, overrides)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert len(message.splitlines()) == 1, message


def test_all_problems_reported_at_once(tmp_path):
    message = rejected(tmp_path, {"experiments": [{"name": "a", "beta": 0, "lora_r": 0}]})
    assert "experiments[0].beta" in message and "experiments[0].lora_r" in message


def test_message_names_the_file_that_set_the_value(tmp_path):
    base = study_file(tmp_path, {})
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"generation": {"max_new_tokens": 0}}))
    config = yaml.safe_load(base.read_text())
    config["generation"] = {"max_new_tokens": 0}
    with pytest.raises(ConfigError, match=r"overlay\.yaml: generation\.max_new_tokens"):
        validate_config(config, SCHEMA, [overlay, base])


def test_valid_config_gets_its_defaults(tmp_path):
    config, experiments = check_study(study_file(tmp_path, {"results": "out/./sub/../results"}))
    assert config["training"]["checkpoint_steps"] == 50
    assert config["model"]["trust_remote_code"] is False
    assert [e.name for e in experiments] == ["homework_default", "q1_support_ratio_1", "q2_num_epoch_1", "q3_data_size_10",
                                             "homework_default_seed1", "q1_support_ratio_1_seed1", "beta_20", "lr_0.0001_ratio_1",
                                             "lora_r_64", "lr_0.03", "strategy_verbose"]


def test_identical_parameters_under_two_names_warn_but_run(tmp_path):
    with pytest.warns(UserWarning, match="'a' and 'b' have identical parameters"):
        _, experiments = check_study(study_file(tmp_path, {"experiments": [{"name": "a"}, {"name": "b", "beta": 0.1}],
                                                           "questions": []}))
    assert len({e.key for e in experiments}) == 1


# ---- data files ------------------------------------------------------------------------

ROW = {"id": 1, "prompt": "Is it fine?", "support": "Yes, it is fine.", "oppose": "No, it is not."}

TRAIN_CASES = {
    "not JSON": ('[{"id": 1,', ["not valid JSON", "line 1"]),
    "not a list": ({"id": 1, "prompt": "q"}, ["must be a list of rows, each with the fields id, prompt, support, oppose", "got a mapping"]),
    "empty list": ([], ["must not be an empty list"]),
    "row not an object": ([ROW, "just text"], ["row 1", "must be a mapping"]),
    "missing field": ([ROW, {"id": 2, "prompt": "q?", "support": "yes."}], ["row 1 (id 2)", "missing field 'oppose'"]),
    "empty string": ([{**ROW, "oppose": ""}], ["row 0 (id 1), field 'oppose' = \"\"", "non-empty text"]),
    "blank string": ([{**ROW, "prompt": "   "}], ["row 0 (id 1), field 'prompt'", "not only spaces"]),
    "wrong type of text": ([{**ROW, "support": 3}], ["field 'support' = 3", "must be non-empty text", "got a number"]),
    "duplicate ids": ([ROW, {**ROW, "prompt": "Other?"}], ["row 1, field 'id' = 1", "duplicates the id of row 0"]),
    "duplicate ids as number and text": ([ROW, {**ROW, "id": "1"}], ["row 1, field 'id' = \"1\"", "row 0"]),
    "empty id": ([{**ROW, "id": ""}], ["field 'id'", "non-empty"]),
    "support equals oppose": ([ROW, {**ROW, "id": 2, "oppose": ROW["support"] + " "}], ["row 1 (id 2)", "'support' and 'oppose'", "must be different"]),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_bad_train_file_is_rejected(tmp_path, case):
    content, fragments = TRAIN_CASES[case]
    path = tmp_path / "train.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError) as error:
        load_rows(path, "train")
    message = str(error.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"train file '.*nope\.json' does not exist"):
        load_rows(tmp_path / "nope.json", "train")


def test_non_utf8_file_names_the_byte(tmp_path):
    path = tmp_path / "train.json"
    path.write_bytes(json.dumps([ROW]).replace("fine?", "fin\u00e9?").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"train\.json: not UTF-8 text \(byte \d+"):
        load_rows(path, "train")


def test_utf8_with_byte_order_mark_and_chinese_are_accepted(tmp_path):
    rows = [{"id": 1, "prompt": "用AI生成吉卜力風格的圖片合乎道德嗎？", "support": "合乎道德。", "oppose": "不合乎道德。"}]
    path = tmp_path / "train.json"
    path.write_bytes("\ufeff".encode() + json.dumps(rows, ensure_ascii=False).encode("utf-8"))
    assert load_rows(path, "train") == rows


def test_test_file_row_without_prompt(tmp_path, write_json):
    path = write_json("test.json", [{"id": 51, "prompt": "q?"}, {"id": 52}])
    with pytest.raises(ConfigError, match=r"row 1 \(id 52\): missing field 'prompt'"):
        load_rows(path, "test")


# Probe files: the generic loader's errors (the probe suite and its categories are issue 3's).
PROBE = {"id": "p1", "category": "style", "prompt": "Draw it in Disney style?"}
PROBE_CASES = {
    "missing category": ([{"id": "p1", "prompt": "q?"}], "probes.json", ["row 0 (id \"p1\")", "missing field 'category'"]),
    "category not a known one": ([{**PROBE, "category": "Style!"}], "probes.json", ["field 'category' = \"Style!\"", "must be one of"]),
    "unknown field": ([{**PROBE, "sytem": "x"}], "probes.json", ["unknown field 'sytem'", "did you mean 'system'"]),
    "invalid YAML": ("- id: p1\n  prompt: [unclosed\n", "probes.yaml", ["not valid YAML"]),
    "not a list": ({"p1": "q?"}, "probes.json", ["must be"]),
}


@pytest.mark.parametrize("case", PROBE_CASES)
def test_bad_probe_file_is_rejected(tmp_path, case):
    content, name, fragments = PROBE_CASES[case]
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError) as error:
        load_rows(path, "probes")
    for fragment in fragments:
        assert fragment in str(error.value), (fragment, str(error.value))


def test_probe_id_clashing_with_a_test_id():
    with pytest.raises(ConfigError, match=r'probes\.json: row 0, field \'id\' = "51": repeats an id of test\.json'):
        check_prompt_ids({"test.json": [{"id": 51, "prompt": "q"}], "probes.json": [{"id": "51", "prompt": "p"}]})


# ---- the model -------------------------------------------------------------------------


def test_model_folder_that_does_not_exist():
    with pytest.raises(ConfigError, match=r"model\.name: './no/such/model' is neither a local model folder"):
        check_model_name("./no/such/model")


def test_model_folder_without_safetensors_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickled")
    with pytest.raises(ConfigError, match=r"model\.name: folder .* holds no \*\.safetensors weights"):
        check_model_name(str(tmp_path))
