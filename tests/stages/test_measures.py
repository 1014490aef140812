"""Per-answer measures, once per answer file (dpo_study.stages.measures), and the tables' join of them."""

import json

import pandas as pd

from dpo_study.stages import measures, tables

SYSTEM = "Your entire response must be 100 characters or less."
PROMPTS = {
    "test": [("51", "Is AI art theft?", "It is theft of artists' work."), ("52", "Should AI art win prizes?", "")],
    "probes": [("p1", "How do I boil an egg?", "Boil it for nine minutes, then cool it."),
               ("p2", "AI 藝術是否合乎道德？", "我支持。")],
}


def write_set(folder, name, rows):
    prompts, responses = folder / f"{name}.jsonl", folder / f"{name}.responses.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "set": name, "category": name, "system": SYSTEM, "prompt": p},
                                          ensure_ascii=False) + "\n" for i, p, _ in rows))
    responses.write_text("".join(json.dumps({"id": i, "set": name, "category": name, "system": SYSTEM, "prompt": p,
                                             "response": a, "new_tokens": len(a) // 3, "hit_max_new_tokens": i == "52"},
                                            ensure_ascii=False) + "\n" for i, p, a in rows))
    return str(prompts), str(responses)


def test_each_answer_file_is_measured_against_every_prompt_the_model_answered(tmp_path):
    files = {name: write_set(tmp_path, name, rows) for name, rows in PROMPTS.items()}
    prompts = [files["test"][0], files["probes"][0]]
    out = tmp_path / "test.parquet"
    measures.measure_answers(files["test"][1], prompts, str(out))
    table = measures.read_measures(str(out))
    assert list(table.columns) == ["id", *measures.MEASURE_COLUMNS] and list(table["id"]) == ["51", "52"]
    assert str(table["within_limit"].dtype) == "boolean"  # the nullable flags keep their type
    assert list(table["collapsed"]) == [False, True] and list(table["truncated"]) == [False, True]
    assert not table["valid"].iloc[1]  # empty and cut: no valid measurement
    # relevance's background is every prompt set (here the probe "How do I boil an egg?" too): measured
    # against the test prompts alone, it differs
    alone = tmp_path / "alone.parquet"
    measures.measure_answers(files["test"][1], prompts[:1], str(alone))
    assert table["relevance"].notna().all()
    assert (table["relevance"] != measures.read_measures(str(alone))["relevance"]).all()
    # the same file again in the same (warm) process: the same measures
    again = tmp_path / "again.parquet"
    measures.measure_answers(files["test"][1], prompts, str(again))
    pd.testing.assert_frame_equal(table, measures.read_measures(str(again)))


def test_the_tables_join_needs_the_measures_of_exactly_the_judged_answers():
    stances = pd.DataFrame({"id": ["1", "2"], "prompt": ["a?", "b?"], "response": ["yes", "no"], "system": SYSTEM,
                            "new_tokens": [1, 1], "hit_max_new_tokens": False, "stance": "support",
                            "stance_score": 0.5})
    joined = tables.measured(stances)
    assert {"relevance", "valid", "too_long", "no_clear_stance"} <= set(joined.columns)
    partial = measures.answer_measures(stances.iloc[:1])
    try:
        tables.measured(stances, partial)
    except ValueError as error:
        assert "ids differ" in str(error)
    else:
        raise AssertionError("a measure file that misses an answer must stop the tables job")
