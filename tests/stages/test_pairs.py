"""Pair construction follows the homework exactly: first data_size rows, first int(n*ratio) prefer support."""

import pytest

from dpo_study.stages.data import build_pairs, read_jsonl, write_pairs

from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT
from dpo_study.config.validation import ConfigError


def texts(pairs, side):
    return [p[side][0]["content"] for p in pairs]


@pytest.mark.parametrize(
    ("data_size", "support_ratio", "n_support"),
    [(10, 0.0, 0), (10, 1.0, 10), (5, 0.5, 2), (7, 0.3, 2), (10, 0.7, 7), (3, 0.99, 2), (1, 0.5, 0)],
)
def test_chosen_and_rejected_lists(train_rows, data_size, support_ratio, n_support):
    pairs = build_pairs(train_rows, data_size, support_ratio)
    ids = list(range(1, data_size + 1))
    expected_chosen = [f"support answer {i}." for i in ids[:n_support]] + [f"oppose answer {i}." for i in ids[n_support:]]
    expected_rejected = [f"oppose answer {i}." for i in ids[:n_support]] + [f"support answer {i}." for i in ids[n_support:]]
    assert texts(pairs, "chosen") == expected_chosen
    assert texts(pairs, "rejected") == expected_rejected
    assert [p["id"] for p in pairs] == ids  # no shuffle


def test_truncating_fraction_matches_python_int(train_rows):
    # 10 * 0.29 == 2.9 -> 2, and the homework's int() of a float product is kept as is.
    pairs = build_pairs(train_rows, 10, 0.29)
    assert [p["preferred"] for p in pairs] == ["support"] * 2 + ["oppose"] * 8


def test_conversational_format_with_system_prompt(train_rows):
    pair = build_pairs(train_rows, 1, 1.0)[0]
    assert pair["prompt"] == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "question 1?"},
    ]
    assert pair["chosen"] == [{"role": "assistant", "content": "support answer 1."}]
    assert pair["rejected"] == [{"role": "assistant", "content": "oppose answer 1."}]


def test_data_size_larger_than_the_data_is_a_clear_error(train_rows):
    with pytest.raises(ConfigError, match=r"data_size: 11 is outside 1\.\.10"):
        build_pairs(train_rows, 11, 0.0)


@pytest.mark.parametrize("bad", [0, -1])
def test_data_size_below_one_is_an_error(train_rows, bad):
    with pytest.raises(ConfigError, match="data_size"):
        build_pairs(train_rows, bad, 0.0)


def test_unknown_strategy_names_the_field(train_rows):
    with pytest.raises(KeyError, match="strategy"):
        build_pairs(train_rows, 2, 0.0, strategy="nope")


def test_stage_writes_jsonl(train_rows, write_json, tmp_path):
    train = write_json("train.json", train_rows)
    out = tmp_path / "pairs.jsonl"
    write_pairs(str(train), str(out), {"data_size": 4, "support_ratio": 0.5, "strategy": "swap"}, "Be short.")
    rows = read_jsonl(out)
    assert [r["preferred"] for r in rows] == ["support", "support", "oppose", "oppose"]
    assert rows[0]["prompt"][0]["content"] == "Be short."


def test_course_style_chinese_rows_work(write_json, tmp_path):
    rows = [{"id": 1, "prompt": "你覺得吉卜力風格的AI畫作如何？", "support": "我支持，這讓大家都能創作。", "oppose": "我反對，這侵害了畫師的權益。"}]
    train = write_json("train.json", rows)
    out = tmp_path / "pairs.jsonl"
    write_pairs(str(train), str(out), {"data_size": 1, "support_ratio": 0.0, "strategy": "swap"}, "回答不超過100字。")
    (pair,) = read_jsonl(out)
    assert pair["chosen"][0]["content"] == "我反對，這侵害了畫師的權益。"
