import math
import re

import pytest

from dpo_study.config.experiments import expand, settings_key
from dpo_study.config.validation import ConfigError

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


def test_keys_of_close_floats_differ_and_read_back_exactly():
    a, b = expand({"defaults": DEFAULTS, "experiments": [
        {"name": "a", "learning_rate": 0.002}, {"name": "b", "learning_rate": 0.0020000001}]})
    assert a.key != b.key
    for experiment in (a, b):
        text = experiment.key.split("learning_rate~")[1].split("_")[0]
        assert float(text) == experiment.params["learning_rate"]


@pytest.mark.parametrize("value", [0.1, 0.0001, 5e-05, 2e-3, 1.0, 1e6, 1e16, 1e-300, 0.1 + 0.2, 123456789.123])
def test_float_keys_round_trip_and_hold_no_plus(value):
    (e,) = expand({"defaults": DEFAULTS, "experiments": [{"name": "a", "beta": value}]})
    text = e.key.split("beta~")[1].split("_")[0]
    assert float(text) == value and "+" not in text
    assert re.fullmatch(r"[A-Za-z0-9_.,=~-]+", e.key)


def test_common_values_stay_readable():
    (e,) = expand({"defaults": DEFAULTS, "experiments": [{"name": "a", "beta": 1.0e6, "learning_rate": 5e-5,
                                                            "support_ratio": 0.5}]})
    assert "support_ratio~0.5_beta~1000000_" in e.key and "learning_rate~5e-05_" in e.key


def test_grid_names_carry_exact_values():
    experiments = expand({"defaults": DEFAULTS, "grids": [{"name": "g", "learning_rate": [0.002, 0.0020000001]}]})
    assert [e.name for e in experiments] == ["g_learning_rate~0.002", "g_learning_rate~0.0020000001"]


def test_non_finite_values_are_an_error():
    with pytest.raises(ConfigError, match=r"experiments\[0\] \(a\)\.beta: must be a finite number"):
        expand({"defaults": DEFAULTS, "experiments": [{"name": "a", "beta": math.inf}]})
    with pytest.raises(ConfigError, match="mix_weights: must be finite numbers"):
        expand({"defaults": DEFAULTS, "mix_weights": {"swap": math.inf},
                "experiments": [{"name": "a", "strategy": "mix"}]})


def test_a_name_a_path_cannot_hold_is_an_error():
    with pytest.raises(ConfigError, match=r"the name 'a/b' of 'a/b' holds a character"):
        expand({"defaults": DEFAULTS, "experiments": [{"name": "a/b"}]})


GENERATION_DEFAULTS = {"max_new_tokens": 128, "do_sample": False, "temperature": 1.0, "seed": 0}


def test_settings_keys_name_what_differs_from_the_defaults():
    assert settings_key(GENERATION_DEFAULTS, GENERATION_DEFAULTS) == "default"
    assert settings_key({**GENERATION_DEFAULTS, "temperature": 1}, GENERATION_DEFAULTS) == "default"
    assert settings_key({**GENERATION_DEFAULTS, "max_new_tokens": 64}, GENERATION_DEFAULTS) == "max_new_tokens~64"
    assert (settings_key({**GENERATION_DEFAULTS, "do_sample": True, "temperature": 0.7}, GENERATION_DEFAULTS)
            == "do_sample~True_temperature~0.7")
    training = {"loss_type": ["sigmoid"], "lora_dropout": 0.1}
    assert settings_key({**training, "loss_type": ["sigmoid", "sft"]}, training) == "loss_type~sigmoid,sft"


def test_settings_keys_of_nested_and_unsafe_values_stay_one_path_segment():
    defaults = {"use": ["ngram"], "llm": {"backend": "base_model", "url": None}}
    assert settings_key({**defaults, "llm": {"backend": "base_model", "url": None}}, defaults) == "default"
    endpoint = {**defaults, "llm": {"backend": "endpoint", "url": "http://host:8000/v1"}}
    key = settings_key(endpoint, defaults)
    assert key.startswith("llm.backend_llm.url~") and re.fullmatch(r"[A-Za-z0-9_.,=~-]+", key)
    other = {**defaults, "llm": {"backend": "endpoint", "url": "http://other:8000/v1"}}
    assert settings_key(other, defaults) != key


def test_close_settings_values_get_different_keys():
    a = settings_key({**GENERATION_DEFAULTS, "temperature": 0.7}, GENERATION_DEFAULTS)
    b = settings_key({**GENERATION_DEFAULTS, "temperature": 0.70000001}, GENERATION_DEFAULTS)
    assert a != b


def test_settings_keys_do_not_depend_on_the_order_of_the_config_file():
    changed = {"temperature": 0.7, "do_sample": True}
    assert (settings_key({**GENERATION_DEFAULTS, **changed}, GENERATION_DEFAULTS)
            == settings_key(dict(reversed({**GENERATION_DEFAULTS, **changed}.items())), GENERATION_DEFAULTS)
            == "do_sample~True_temperature~0.7")
