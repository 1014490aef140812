"""responses.csv: the foundation's columns first, then every measure for both answers, once each."""

import pandas as pd

from dpo_study.stages import tables

SYSTEM = "Your entire response must be 100 characters or less."


def judged(answers):
    """A stances table as judge_responses writes it, with two judges (ngram primary)."""
    rows = []
    for i, (prompt, answer, stance, score) in enumerate(answers):
        rows.append({"id": str(i), "set": "test" if i == 0 else "probe", "category": "test" if i == 0 else "chinese",
                     "system": SYSTEM, "prompt": prompt, "response": answer, "new_tokens": len(answer) // 4,
                     "hit_max_new_tokens": False, "ngram_stance": stance, "ngram_score": score,
                     "llm_stance": "neutral", "llm_score": 0.0, "stance": stance,
                     "support_score": (score + 1) / 2, "stance_score": score, "chars": len(answer)})
    return tables.measured(pd.DataFrame(rows))


def test_side_by_side_columns_and_values():
    base = judged([("Is it ethical?", "It is theft.", "oppose", -0.9), ("合乎道德嗎？", "It is fine.", "support", 0.8)])
    aligned = judged([("Is it ethical?", "It is a joyful homage.", "support", 0.7), ("合乎道德嗎？", "我支持。", "support", 0.9)])
    rewards = pd.DataFrame({"id": ["0", "1"], "original_implicit_reward": [-0.2, 0.0], "aligned_implicit_reward": [0.3, 0.1]})
    table = tables.side_by_side(base, aligned, "e", rewards)
    assert list(table.columns[: len(tables.RESPONSE_COLUMNS)]) == tables.RESPONSE_COLUMNS
    assert table.columns.is_unique
    for column in ["original_ngram_stance", "aligned_llm_score", "aligned_no_clear_stance", "original_implicit_reward",
                   "aligned_language_match", "length_limit"]:
        assert column in table
    assert list(table["original_language_match"]) == [True, False]  # English answer to a Chinese prompt
    assert list(table["aligned_language_match"]) == [True, True]
    assert list(table["aligned_implicit_reward"]) == [0.3, 0.1]
    assert list(table["aligned_tokens"]) == [5, 1]
