"""Each rejected-example strategy's exact pairs on a small fixture, and the checks on invalid combinations."""

import pytest
import yaml

from conftest import REPO
from dpo_study.config import strategies
from dpo_study.stages.data import build_pairs, read_jsonl, write_jsonl, write_pairs
from dpo_study.config.data_files import check_strategies
from dpo_study.config.experiments import Experiment
from dpo_study.config.validation import ConfigError
from dpo_study.config.strategies import (
    HEDGE_TEMPLATES, OFF_TOPIC_TEMPLATES, REFUSAL_TEMPLATES, VERBOSE_TEMPLATES, StrategyContext,
)


def pairs_of(rows, data_size, support_ratio, strategy, **context):
    pairs = build_pairs(rows, data_size, support_ratio, strategy, context=StrategyContext(**context))
    return [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs], pairs


def test_swap_rejects_the_other_stance(train_rows):
    got, _ = pairs_of(train_rows, 3, 1 / 3, "swap")
    assert got == [("support answer 1.", "oppose answer 1."), ("oppose answer 2.", "support answer 2."),
                   ("oppose answer 3.", "support answer 3.")]


@pytest.mark.parametrize(
    ("strategy", "templates"),
    [("hedge", HEDGE_TEMPLATES), ("off_topic", OFF_TOPIC_TEMPLATES), ("refusal", REFUSAL_TEMPLATES)],
)
def test_template_strategies_reject_their_templates_in_turn(train_rows, strategy, templates):
    got, pairs = pairs_of(train_rows, 7, 0.5, strategy)  # int(7 * 0.5) = 3 rows prefer support
    chosen = ["support answer 1.", "support answer 2.", "support answer 3.", "oppose answer 4.",
              "oppose answer 5.", "oppose answer 6.", "oppose answer 7."]
    assert got == [(c, templates[i % len(templates)]) for i, c in enumerate(chosen)]
    assert [p["strategy"] for p in pairs] == [strategy] * 7
    assert [p["preferred"] for p in pairs] == ["support"] * 3 + ["oppose"] * 4


def test_hedge_templates_take_no_side_and_fit_the_instruction():
    for text in HEDGE_TEMPLATES:
        assert len(text) <= 100, text
        assert not any(word in text.lower() for word in ("ethical", "theft", "harmless", "unethical"))


def test_verbose_rejects_the_same_answer_made_too_long(train_rows):
    got, _ = pairs_of(train_rows, 4, 0.0, "verbose")
    assert got == [(f"oppose answer {i}.", f"oppose answer {i}." + VERBOSE_TEMPLATES[(i - 1) % 3]) for i in range(1, 5)]
    assert all(len(rejected) > 100 >= len(chosen) for chosen, rejected in got)


def test_on_policy_rejects_the_base_answer(train_rows):
    base = {"1": "a base answer to question 1.", "2": "oppose answer 2.", "3": "support answer 3."}
    got, pairs = pairs_of(train_rows, 3, 0.0, "on_policy", base_responses=base)
    assert got == [
        ("oppose answer 1.", "a base answer to question 1."),
        ("oppose answer 2.", "support answer 2."),  # the base model already says the chosen answer
        ("oppose answer 3.", "support answer 3."),
    ]
    assert [p["preferred"] for p in pairs] == ["oppose"] * 3


def test_on_policy_without_a_base_answer_names_the_row(train_rows):
    with pytest.raises(KeyError, match="on_policy.*row id 2"):
        pairs_of(train_rows, 2, 0.0, "on_policy", base_responses={"1": "x."})


@pytest.fixture
def ambiguous_rows(train_rows):
    for row in train_rows:
        row["ambiguous"] = row["id"] in (2, 5, 6)
    return train_rows


@pytest.mark.parametrize(
    ("support_ratio", "chosen_stances"),
    [
        (1.0, ["support", "support", "support", "support", "oppose", "support"]),
        (0.0, ["oppose", "support", "oppose", "oppose", "oppose", "support"]),
        (0.5, ["support", "support", "support", "oppose", "oppose", "support"]),
    ],
)
def test_balanced_alternates_stances_on_ambiguous_rows_only(ambiguous_rows, support_ratio, chosen_stances):
    got, pairs = pairs_of(ambiguous_rows, 6, support_ratio, "balanced")
    other = {"support": "oppose", "oppose": "support"}
    assert got == [(f"{s} answer {i}.", f"{other[s]} answer {i}.") for i, s in enumerate(chosen_stances, 1)]
    assert [p["preferred"] for p in pairs] == chosen_stances
    swap, _ = pairs_of(ambiguous_rows, 6, support_ratio, "swap")
    assert [g for g, row in zip(got, ambiguous_rows) if not row["ambiguous"]] == \
           [s for s, row in zip(swap, ambiguous_rows) if not row["ambiguous"]]


def test_mix_draws_one_strategy_per_row_from_the_seed(train_rows):
    weights = {"hedge": 1.0, "swap": 1.0}
    got, pairs = pairs_of(train_rows, 10, 0.0, "mix", seed=42, mix_weights=weights)
    drawn = ["swap", "hedge", "hedge", "hedge", "swap", "swap", "swap", "hedge", "hedge", "hedge"]
    assert [p["strategy"] for p in pairs] == drawn
    expected = [(f"oppose answer {i}.", f"support answer {i}." if name == "swap" else HEDGE_TEMPLATES[(i - 1) % 5])
                for i, name in enumerate(drawn, 1)]
    assert got == expected
    again, _ = pairs_of(train_rows, 10, 0.0, "mix", seed=42, mix_weights=weights)
    assert again == got
    other_seed, _ = pairs_of(train_rows, 10, 0.0, "mix", seed=7, mix_weights=weights)
    assert other_seed != got
    prefix, _ = pairs_of(train_rows, 4, 0.0, "mix", seed=42, mix_weights=weights)
    assert prefix == got[:4]  # a smaller data_size gets the same draws for its rows


def test_mix_of_one_strategy_is_that_strategy(train_rows):
    got, _ = pairs_of(train_rows, 5, 0.4, "mix", seed=3, mix_weights={"verbose": 2.0})
    assert got == pairs_of(train_rows, 5, 0.4, "verbose")[0]


def test_mix_with_on_policy_uses_the_base_answers(train_rows):
    base = {str(i): f"base {i}." for i in range(1, 11)}
    _, pairs = pairs_of(train_rows, 10, 0.0, "mix", seed=42, mix_weights={"on_policy": 1.0, "refusal": 1.0},
                        base_responses=base)
    for pair in pairs:
        rejected = pair["rejected"][0]["content"]
        assert (rejected == f"base {pair['id']}.") == (pair["strategy"] == "on_policy")
    assert {p["strategy"] for p in pairs} == {"on_policy", "refusal"}


def test_stage_passes_seed_weights_and_base_answers(train_rows, write_json, tmp_path):
    train = write_json("train.json", train_rows)
    base = tmp_path / "train_responses.jsonl"
    write_jsonl([{"id": str(i), "response": f"base {i}."} for i in range(1, 11)], base)
    out = tmp_path / "pairs.jsonl"
    data = {"data_size": 10, "support_ratio": 0.0, "strategy": "mix", "seed": 42,
            "mix_weights": {"on_policy": 1.0, "swap": 1.0}}
    write_pairs(str(train), str(out), data, "Be short.", base_responses=str(base))
    written = read_jsonl(out)
    context = StrategyContext(seed=42, mix_weights=data["mix_weights"],
                              base_responses={str(i): f"base {i}." for i in range(1, 11)})
    assert written == build_pairs(train_rows, 10, 0.0, "mix", "Be short.", context)
    assert any(p["rejected"][0]["content"].startswith("base ") for p in written)


def test_every_strategy_is_in_the_config_schema_and_documented():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["$defs"]["strategy"]["enum"] == list(strategies.STRATEGIES)
    assert schema["properties"]["mix_weights"]["propertyNames"]["enum"] == [
        name for name in strategies.STRATEGIES if name != "mix"]
    readme = (REPO / "docs/configuring.md").read_text()  # the strategies table
    for name, strategy in strategies.STRATEGIES.items():
        assert "rejected" in strategy.build.__doc__.lower(), name
        assert f"| `{name}` |" in readme, name


def experiment(name, **params):
    defaults = dict(num_epoch=3, data_size=6, support_ratio=0.0, beta=0.1, lora_r=16, lora_alpha=16,
                    learning_rate=1e-4, strategy="swap", seed=42)
    return Experiment(name, {**defaults, **params})


def test_balanced_without_ambiguous_rows_is_an_error(ambiguous_rows):
    check_strategies([experiment("ok", strategy="balanced", data_size=2)], ambiguous_rows, "t.json")
    with pytest.raises(ConfigError, match=r"experiment 'b', field strategy: 'balanced' .* none of the first 1 rows of t\.json"):
        check_strategies([experiment("b", strategy="balanced", data_size=1)], ambiguous_rows, "t.json")
    with pytest.raises(ConfigError, match="experiment 'm', field strategy: 'mix'"):
        check_strategies([experiment("m", strategy="mix", data_size=1, mix_weights={"balanced": 1.0, "swap": 1.0})],
                         ambiguous_rows, "t.json")


def test_support_ratio_with_only_ambiguous_rows_is_an_error(ambiguous_rows):
    rows = [ambiguous_rows[1], ambiguous_rows[4]]
    check_strategies([experiment("ok", strategy="balanced", data_size=2, support_ratio=0.0)], rows, "t.json")
    check_strategies([experiment("swap", data_size=2, support_ratio=0.5)], rows, "t.json")
    with pytest.raises(ConfigError, match="experiment 'r', field support_ratio: has no effect"):
        check_strategies([experiment("r", strategy="balanced", data_size=2, support_ratio=0.5)], rows, "t.json")


def test_bundled_data_marks_ambiguous_rows_within_the_homework_size():
    import json

    rows = json.loads((REPO / "data/train.json").read_text())
    ambiguous = [row["id"] for row in rows if row.get("ambiguous")]
    assert len(ambiguous) >= 4 and any(i <= 50 for i in ambiguous) and any(i > 50 for i in ambiguous)
    check_strategies([experiment("default", strategy="balanced", data_size=50)], rows, "data/train.json")


@pytest.mark.parametrize(
    ("mix_weights", "strategies_used", "base_train_jobs"),
    [({"swap": 1, "hedge": 1}, ["swap", "mix", "balanced"], 0),
     ({"swap": 1, "on_policy": 1}, ["swap", "mix"], 1),
     ({"swap": 1}, ["on_policy", "hedge"], 1)],
)
def test_only_strategies_that_need_them_generate_base_answers_to_training_prompts(
        tmp_path, mix_weights, strategies_used, base_train_jobs):
    from snakemake_helpers import scheduled_jobs, snakemake, workdir_with_config

    experiments = [{"name": name, "strategy": name} for name in strategies_used]
    config = workdir_with_config(tmp_path, {"experiments": experiments, "questions": [], "mix_weights": mix_weights})
    jobs = scheduled_jobs(snakemake(tmp_path, config, "-n").stdout)
    assert jobs.get("prepare_pairs", 0) + jobs.get("prepare_model_pairs", 0) == len(strategies_used)
    assert jobs.get("prepare_model_pairs", 0) == base_train_jobs  # pairs from the model's answers live with it
    assert jobs.get("generate_base_train", 0) == jobs.get("prepare_train_prompts", 0) == base_train_jobs
