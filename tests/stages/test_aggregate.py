"""Category, defect, generalisation and judge tables on a hand-made responses table."""

import json

import pandas as pd
import pytest

from dpo_study.stages import aggregate
from dpo_study.analysis.metrics import DEFECTS

# (experiment, category, original stance/score, aligned stance/score, original defects, aligned defects)
ROWS = [
    ("a", "test", "oppose", -0.8, "support", 0.8, set(), set()),
    ("a", "test", "oppose", -0.6, "support", 0.6, set(), {"too_long"}),
    ("a", "chinese", "oppose", -0.8, "oppose", -0.6, {"too_neutral"}, set()),
    ("a", "chinese", "support", 0.8, "support", 0.8, set(), set()),
    ("a", "leading", "neutral", 0.0, "support", 0.7, {"too_neutral"}, {"one_sided_on_balance", "collapsed"}),
    ("b", "test", "oppose", -0.8, "oppose", -0.78, set(), set()),
    ("b", "test", "oppose", -0.6, "oppose", -0.6, set(), set()),
    ("b", "chinese", "oppose", -0.8, "support", 0.2, set(), set()),
    ("b", "chinese", "support", 0.8, "support", 0.8, set(), set()),
    ("b", "leading", "neutral", 0.0, "neutral", 0.0, {"too_neutral"}, {"too_neutral"}),
]


def side_columns(side, stance, score, defects, chars):
    return {
        f"{side}_stance": stance, f"{side}_stance_score": score, f"{side}_chars": chars, f"{side}_tokens": chars // 4,
        f"{side}_within_limit": chars <= 100, f"{side}_language_match": True, f"{side}_refusal": False,
        f"{side}_repetition": 0.0, f"{side}_hedges": int("too_neutral" in defects),
        f"{side}_ngram_stance": stance if side == "original" else "oppose",
        **{f"{side}_{d}": d in defects for d in DEFECTS},
    }


@pytest.fixture
def responses(tmp_path):
    rows = []
    for i, (experiment, category, o_stance, o_score, a_stance, a_score, o_def, a_def) in enumerate(ROWS):
        rows.append({"experiment": experiment, "id": str(i % 5), "set": "test" if category == "test" else "probe",
                     "category": category, **side_columns("original", o_stance, o_score, o_def, 80),
                     **side_columns("aligned", a_stance, a_score, a_def, 120 if "too_long" in a_def else 60),
                     "aligned_implicit_reward": 0.1 * (i % 5)})
    path = tmp_path / "responses.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return aggregate.read_responses(str(path))


def test_categories_start_with_the_test_prompts(responses):
    table = aggregate.categories_table(responses).set_index(["experiment", "category"])
    assert list(table.loc["a"].index) == ["test", "chinese", "leading"]
    assert table.loc[("a", "test"), "support_rate_before"] == 0 and table.loc[("a", "test"), "support_rate_after"] == 1
    assert table.loc[("a", "chinese"), "stance_score_after"] == pytest.approx(0.1)
    assert table.loc[("a", "test"), "within_limit_after"] == 0.5
    assert table.loc[("a", "test"), "chars_after"] == 90 and table.loc[("a", "test"), "chars_before"] == 80
    assert table.loc[("b", "leading"), "neutral_rate_after"] == 1
    # Without validity columns every answer counts; the collapsed answer of a/leading is then valid.
    assert table.loc[("a", "leading"), "valid_pairs"] == 1


def test_defects_before_after_new_and_fixed(responses):
    table = aggregate.defects_table(responses).set_index(["experiment", "defect", "set"])
    assert table.loc[("a", "too_long", "test")].to_dict() == {"prompts": 2, "before": 0, "after": 1, "new": 1, "fixed": 0}
    assert table.loc[("a", "too_neutral", "probe")].to_dict() == {"prompts": 3, "before": 2, "after": 0, "new": 0, "fixed": 2}
    assert table.loc[("a", "one_sided_on_balance", "probe"), "new"] == 1
    assert table.loc[("b", "too_neutral", "probe")].to_dict() == {"prompts": 3, "before": 1, "after": 1, "new": 0, "fixed": 0}
    assert len(table) == 2 * len(DEFECTS) * 2


def test_generalisation_compares_each_category_with_the_test_shift(responses):
    table = aggregate.generalisation_table(responses).set_index(["experiment", "category"])
    # a: test shift = mean(1.6, 1.2) = 1.4; chinese = mean(0.2, 0) = 0.1; leading = 0.7.
    assert table.loc[("a", "chinese"), "stance_shift"] == pytest.approx(0.1)
    assert table.loc[("a", "chinese"), "test_stance_shift"] == pytest.approx(1.4)
    assert table.loc[("a", "chinese"), "transfer"] == pytest.approx(0.1 / 1.4)
    assert table.loc[("a", "leading"), "transfer"] == pytest.approx(0.5)
    assert table.loc[("a", "leading"), "support_rate_shift"] == 1 and table.loc[("a", "leading"), "label_changed_rate"] == 1
    # b barely moves on the test prompts (shift 0.01): no transfer ratio to report.
    assert pd.isna(table.loc[("b", "chinese"), "transfer"])
    assert "test" not in table.index.get_level_values("category")


def test_judges_table_reads_each_accuracy_and_agreement(responses, tmp_path):
    report = {"judge": "ngram", "cv_accuracy": 0.9, "holdout": {
        "examples": 6, "accuracy": 0.5, "macro_f1": 0.4, "recall": {"support": 1.0, "oppose": 0.5, "neutral": 0.0},
        "accuracy_by_script": {"han": {"examples": 2, "accuracy": 0.5}, "latin": {"examples": 4, "accuracy": 0.5}}}}
    path = tmp_path / "ngram_accuracy.json"
    path.write_text(json.dumps(report))
    (row,) = aggregate.judges_table(responses, [str(path)], primary="embedding").to_dict("records")
    assert row["primary"] is False and row["holdout_accuracy"] == 0.5 and row["recall_neutral"] == 0.0
    assert row["accuracy_han"] == 0.5 and row["cv_accuracy"] == 0.9
    # ngram agrees on every original answer (10) and on the 3 aligned answers labelled oppose: 13 of 20.
    assert row["agreement_with_primary"] == pytest.approx(13 / 20)
