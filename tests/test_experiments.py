import pytest

from dpo_study.experiments import expand
from dpo_study.validation import ConfigError

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


def data_keys(config_extra, *entries):
    return [e.data_key for e in expand({"defaults": DEFAULTS, **config_extra, "experiments": list(entries)})]


def test_seed_is_part_of_the_data_key_only_for_seeded_strategies():
    a, b = data_keys({}, {"name": "a", "seed": 1}, {"name": "b", "seed": 2})
    assert a == b == "data_size~50_support_ratio~0_strategy~swap"  # swap pairs do not depend on the seed
    a, b = data_keys({"mix_weights": {"swap": 1, "hedge": 1}},
                     {"name": "a", "strategy": "mix", "seed": 1}, {"name": "b", "strategy": "mix", "seed": 2})
    assert a == "data_size~50_support_ratio~0_strategy~mix_seed~1_mix_weights~hedge=1,swap=1"
    assert b == "data_size~50_support_ratio~0_strategy~mix_seed~2_mix_weights~hedge=1,swap=1"


def test_mix_weights_key_mix_experiments_only():
    plain = expand({"defaults": DEFAULTS, "experiments": [{"name": "s"}]})[0]
    with_mix = expand({"defaults": DEFAULTS, "mix_weights": {"swap": 1, "hedge": 3},
                       "experiments": [{"name": "s"}, {"name": "m", "strategy": "mix"}]})
    assert with_mix[0].key == plain.key and with_mix[0].data_key == plain.data_key  # swap runs stay cached
    assert with_mix[1].key.endswith("strategy~mix_seed~42_mix_weights~hedge=3,swap=1")
    other = expand({"defaults": DEFAULTS, "mix_weights": {"swap": 1, "hedge": 2},
                    "experiments": [{"name": "m", "strategy": "mix"}]})[0]
    assert other.key != with_mix[1].key and other.data_key != with_mix[1].data_key
    same = expand({"defaults": DEFAULTS, "mix_weights": {"hedge": 3.0, "swap": 1.0},
                   "experiments": [{"name": "m", "strategy": "mix"}]})[0]
    assert same.key == with_mix[1].key


def test_mix_without_weights_is_an_error():
    with pytest.raises(ConfigError, match=r"experiments\[0\] \(m\)\.strategy: 'mix' needs weights: set mix_weights"):
        expand({"defaults": DEFAULTS, "experiments": [{"name": "m", "strategy": "mix"}]})
    with pytest.raises(ConfigError, match=r"grids\[0\] \(g\)\.strategy: 'mix'"):
        expand({"defaults": DEFAULTS, "grids": [{"name": "g", "strategy": ["swap", "mix"]}]})


def test_strategy_is_a_sweep_dimension():
    experiments = expand({"defaults": DEFAULTS, "grids": [{"name": "g", "strategy": ["swap", "hedge", "on_policy"]}]})
    assert [e.name for e in experiments] == ["g_strategy~swap", "g_strategy~hedge", "g_strategy~on_policy"]
    assert len({e.data_key for e in experiments}) == 3
