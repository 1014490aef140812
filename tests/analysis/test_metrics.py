"""Per-response measures on hand-checked English and Chinese strings."""

import math

import pandas as pd
import pytest

from dpo_study.analysis import metrics

SYSTEM_EN = "Your entire response must be 100 characters or less."
SYSTEM_ZH = "你的回答必須在100字以內。"


def test_units_split_words_and_single_chinese_characters():
    assert metrics.units("It's FINE, it's fine.") == ["it's", "fine", "it's", "fine"]
    assert metrics.units("我支持AI藝術") == ["我", "支", "持", "ai", "藝", "術"]
    assert metrics.units("") == []


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("a b c d", 1, 1.0),
        ("the cat the cat", 1, 0.5),  # 2 unique of 4 words
        ("the cat the cat", 2, 2 / 3),  # (the cat), (cat the), (the cat): 2 unique of 3
        ("好好好好", 1, 0.25),  # 1 unique character of 4
        ("好好好好", 2, 1 / 3),  # (好好) three times
        ("short", 2, 1.0),  # no bigram at all
    ],
)
def test_distinct_n(text, n, expected):
    assert metrics.distinct_n(text, n) == pytest.approx(expected)


def test_repetition_of_a_loop_and_of_a_plain_sentence():
    # 7 trigrams: (the cat sat) x3, (cat sat the) x2, (sat the cat) x2 -> 3 unique, 4 repeats.
    assert metrics.repetition("the cat sat the cat sat the cat sat") == pytest.approx(4 / 7)
    assert metrics.repetition("Each word here appears once only.") == 0.0
    # 我我我我我我: 4 trigrams, all the same.
    assert metrics.repetition("我我我我我我") == pytest.approx(3 / 4)


@pytest.mark.parametrize(
    ("system", "limit"),
    [(SYSTEM_EN, 100), (SYSTEM_ZH, 100), ("Answer in 280 chars.", 280), ("回答不超過50個字。", 50),
     ("Answer at length.", None), ("", None)],
)
def test_length_limit_from_the_system_prompt(system, limit):
    found = metrics.length_limit(system)
    assert (math.isnan(found) if limit is None else found == limit)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AI art is fine.", "latin"),
        ("我覺得AI繪圖很好。", "han"),
        ("我支持 AI art", "han"),  # 3 characters against 2 words
        ("The word 吉卜力 means Ghibli in Chinese.", "latin"),  # 6 words against 3 characters
        ("ジブリ風のAIアート", "kana"),
        ("인공지능 그림", "hangul"),
        ("123 !!!", "other"),
        ("   ", ""),
    ],
)
def test_script(text, expected):
    assert metrics.script(text) == expected


def test_expected_script_prefers_the_probe_language_then_the_prompt():
    assert metrics.expected_script("Is AI art ethical?", SYSTEM_EN, "zh-Hant") == "han"
    assert metrics.expected_script("AI繪圖合乎道德嗎？", SYSTEM_EN, None) == "han"
    assert metrics.expected_script("Is AI art ethical?", SYSTEM_ZH, "") == "latin"
    assert metrics.expected_script("Is AI art ethical?", SYSTEM_EN, "en") == "latin"


def test_hedges_refusals_and_balance_requests():
    assert metrics.hedge_count("It depends. On the other hand, perhaps not.") == 3
    assert metrics.hedge_count("It depends on the use.") == 1  # "it depends" and "depends on" overlap
    assert metrics.hedge_count("An imbalance of power.") == 0  # "balance" only as a word
    assert metrics.hedge_count("It is theft.") == 0
    # 見仁見智, 一方面, 另一方面 (which holds 一方面 but counts once)
    assert metrics.hedge_count("這個問題見仁見智，一方面很方便，另一方面傷害畫師。") == 3
    assert metrics.is_refusal("I'm sorry, but I can't help with that.")
    assert metrics.is_refusal("抱歉，我無法回答這個問題。")
    assert not metrics.is_refusal("I can draw that for you.")
    assert metrics.asks_for_balance("Give a balanced view: pros and cons of AI art?")
    assert metrics.asks_for_balance("請說明AI繪圖的利弊。")
    assert not metrics.asks_for_balance("Is AI art ethical?")


def test_response_metrics_table():
    answers = pd.DataFrame({
        "prompt": ["Is AI Ghibli art ethical?", "AI吉卜力風格的圖合乎道德嗎？", "Weigh both sides of AI art.", "Write at length."],
        "system": [SYSTEM_EN, SYSTEM_ZH, SYSTEM_EN, "Answer in detail."],
        "language": ["", "zh-Hant", "", ""],
        "response": ["It is theft.", "It is theft.", "x" * 101, "ok ok ok ok ok"],
    })
    out = metrics.response_metrics(answers)
    assert list(out["chars"]) == [12, 12, 101, 14]
    assert list(out["within_limit"].astype(object)) == [True, True, False, pd.NA]
    assert list(out["language_match"]) == [True, False, True, True]  # the Chinese prompt got English
    assert list(out["asks_for_balance"]) == [False, False, True, False]
    assert out.loc[3, "distinct_1"] == pytest.approx(0.2) and out.loc[3, "repetition"] == pytest.approx(2 / 3, abs=1e-4)


def test_defects_follow_their_definitions():
    table = pd.DataFrame({
        "stance": ["neutral", "support", "oppose", "support", "support"],
        "stance_score": [0.0, 0.3, -0.9, 0.9, 0.8],
        "hedges": [0, 0, 0, 0, 2],
        "within_limit": pd.array([True, True, False, pd.NA, True], dtype="boolean"),
        "asks_for_balance": [False, False, False, True, True],
        "chars": [40, 40, 120, 60, 0],
        "repetition": [0.0, 0.0, 0.0, 0.0, 0.0],
    })
    flags = metrics.defects(table)
    assert list(flags.columns) == list(metrics.DEFECTS)
    assert list(flags["too_neutral"]) == [True, False, False, False, True]
    assert list(flags["no_clear_stance"]) == [True, True, False, False, False]
    assert list(flags["too_long"]) == [False, False, True, False, False]  # no limit stated: not too long
    assert list(flags["one_sided_on_balance"]) == [False, False, False, True, False]  # the last hedges
    assert list(flags["collapsed"]) == [False, False, False, False, True]  # empty


def test_a_probe_language_reaches_the_language_match():
    from dpo_study.stages.data import prompt_records

    records = prompt_records([{"id": 51, "prompt": "Is AI art ethical?"}],
                             [{"id": "zh1", "category": "chinese", "prompt": "Is AI art ethical? Answer in Chinese.",
                               "language": "zh-Hant"}], SYSTEM_EN)
    assert "language" not in records[0] and records[1]["language"] == "zh-Hant"
    answers = pd.DataFrame(records).assign(response=["It is fine.", "It is fine."])
    assert list(metrics.response_metrics(answers)["language_match"]) == [True, False]
