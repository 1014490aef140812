import pytest

from dpo_study.experiments import ConfigError, expand

DEFAULTS = dict(num_epoch=3, data_size=50, support_ratio=0, beta=0.1, lora_r=16, lora_alpha=16,
                learning_rate=1e-4, strategy="swap", seed=42)


def test_named_experiments_take_defaults_and_get_readable_keys():
    (e,) = expand({"defaults": DEFAULTS, "experiments": [{"name": "a", "support_ratio": 1}]})
    assert e.params["support_ratio"] == 1.0 and e.params["num_epoch"] == 3
    assert e.key == ("num_epoch~3_data_size~50_support_ratio~1_beta~0.1_lora_r~16_lora_alpha~16_"
                     "learning_rate~0.0001_strategy~swap_seed~42")
    assert e.data_key == "data_size~50_support_ratio~1_strategy~swap"


def test_equal_values_of_different_types_share_a_key():
    a, b = expand({"defaults": DEFAULTS, "experiments": [
        {"name": "a", "support_ratio": 1}, {"name": "b", "support_ratio": 1.0, "num_epoch": 3.0}]})
    assert a.key == b.key


def test_grid_is_the_product_of_its_lists():
    experiments = expand({"defaults": DEFAULTS, "grids": [{"name": "g", "beta": [0.1, 0.5], "lora_r": [8, 16], "seed": 1}]})
    assert [e.name for e in experiments] == [
        "g_beta~0.1_lora_r~8", "g_beta~0.1_lora_r~16", "g_beta~0.5_lora_r~8", "g_beta~0.5_lora_r~16"]
    assert {e.params["seed"] for e in experiments} == {1}


def test_duplicate_names_are_an_error():
    with pytest.raises(ConfigError, match="duplicate experiment name 'a'"):
        expand({"defaults": DEFAULTS, "experiments": [{"name": "a"}, {"name": "a", "beta": 0.2}]})


def test_identical_parameters_under_two_names_warn():
    with pytest.warns(UserWarning, match="identical parameters"):
        expand({"defaults": DEFAULTS, "experiments": [{"name": "a"}, {"name": "b"}]})


def test_no_experiments_is_an_error():
    with pytest.raises(ConfigError, match="no experiment"):
        expand({"defaults": DEFAULTS})
