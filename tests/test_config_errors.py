"""Bad config or input stops the run before any job, with a message that names the field."""

import pytest

from snakemake_helpers import snakemake, workdir_with_config


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
        ({"training": {"backend": "vllm"}}, "backend"),
        ({"training": {"recipe": "slow"}}, "recipe"),
        ({"training": {"per_device_train_batch_size": 3}}, "training.per_device_train_batch_size"),
        ({"generation": {"decode": "graph", "do_sample": True}}, "generation.decode"),
    ],
)
def test_rejected_before_any_job(tmp_path, overrides, message):
    config = workdir_with_config(tmp_path, overrides)
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    assert "Job stats" not in output
    assert not (tmp_path / "results").exists()


def test_bad_train_row_names_row_and_field(tmp_path, write_json):
    write_json("bad_train.json", [{"id": 1, "prompt": "q?", "support": "yes.", "oppose": ""}])
    config = workdir_with_config(tmp_path, {"data": {"train": "bad_train.json"}})
    result = snakemake(tmp_path, config, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "row 0 (id 1), field 'oppose'" in output
