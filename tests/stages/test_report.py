"""Report tables, plots and findings on a hand-written study (tests/study_tables.py), without Snakemake."""

import math
import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import study_tables as st
from dpo_study.analysis import comparisons, questions, statistics
from dpo_study.config.questions import check_questions
from dpo_study.stages import findings, plots, report
from dpo_study.config.validation import ConfigError


@pytest.fixture
def study(tmp_path):
    experiments, responses = st.write_study(tmp_path / "tables")
    return experiments, responses


@pytest.fixture
def tables(study):
    return comparisons.read_experiments(study[0]), comparisons.read_responses(study[1])


def q1_rates():
    return [st.EXPERIMENTS[f"q1_seed~{s}"][1] / st.TEST_PROMPTS for s in (1, 2, 3)]


def test_seed_group_is_mean_and_sample_sd_over_its_seeds(tables):
    experiments, _ = tables
    summary = statistics.group_summary(experiments).set_index("group")
    assert "q1" in summary.index and "q1_seed~1" not in summary.index
    q1 = summary.loc["q1"]
    assert q1["seed_count"] == 3
    assert q1["support_rate_after"] == pytest.approx(np.mean(q1_rates()))
    assert q1["support_rate_after_sd"] == pytest.approx(np.std(q1_rates(), ddof=1))
    assert math.isnan(summary.loc["homework_default", "support_rate_after_sd"])  # one seed: no spread
    assert len(summary) == len(st.EXPERIMENTS) - 2


def test_identical_parameters_under_two_names_count_as_one_run(tables):
    experiments, _ = tables
    alias = experiments[experiments["experiment"] == "q1_seed~1"].assign(experiment="same_as_q1_seed1")
    summary = statistics.group_summary(pd.concat([experiments, alias])).set_index("group")
    assert summary.loc["q1", "support_rate_after_n"] == 3


def test_question_compares_seed_groups_with_base_and_difference(tables):
    experiments, responses = tables
    table = questions.question_table(st.QUESTIONS[0], experiments, responses).set_index("metric")
    support = table.loc["support_rate"]
    assert (support["a_group"], support["b_group"]) == ("homework_default", "q1")
    assert support["base"] == pytest.approx(st.BASE_SUPPORTING / st.TEST_PROMPTS)
    assert support["b_n"] == 3 and support["a_n"] == 1
    assert support["difference"] == pytest.approx(np.mean(q1_rates()) - 0.0)
    assert support["prompts"] == st.TEST_PROMPTS
    # Per-response metrics the report does not know are compared too (a boolean becomes a rate), and the
    # metrics of the run as a whole (category ''); text columns are not.
    assert table.loc["too_long", "b_mean"] == pytest.approx(2 / 3) and table.loc["too_long", "base"] == 0
    assert table.loc["train_loss", "category"] == "" and "git_commit" not in table.index
    # Q1's support rates over 10 prompts, prompt by prompt: 8 or 9 of the 10 moved (a mean over seeds).
    assert support["low"] > 0 and support["established"]


def test_category_question_has_one_block_per_prompt_category(tables):
    experiments, responses = tables
    table = questions.question_table(st.QUESTIONS[2], experiments, responses)
    assert list(dict.fromkeys(table["category"])) == ["test", *st.PROBES, ""]  # "": the run as a whole
    other_style = table[(table["category"] == "other_style") & (table["metric"] == "support_rate")].iloc[0]
    assert other_style["prompts"] == 2
    assert other_style["base"] == 0.5 and other_style["a_mean"] == 0.0 and other_style["b_mean"] == 1.0
    # Per-response metrics beyond stance and length (here a boolean) become rates.
    too_long = table[(table["category"] == "test") & (table["metric"] == "too_long")].iloc[0]
    assert too_long["b_mean"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ({"name": "Q1", "a": "nope", "b": "homework_default"},
         r"questions\[0\] \(Q1\)\.a: 'nope' is not an experiment"),
        ({"name": "Q1", "a": "homework_default", "b": "x"}, r"\.b: 'x' is not an experiment"),
        ({"name": "Q4", "a": "homework_default", "b": "q1_seed~1", "categories": ["test", "chinese"]},
         r"\.categories: \['chinese'\] are not prompt categories"),
    ],
)
def test_bad_question_is_rejected_naming_the_field(question, message):
    with pytest.raises(ConfigError, match=message):
        check_questions([question], st.EXPERIMENTS, list(st.PROBES))


def test_duplicate_question_name_is_rejected():
    question = {"name": "Q1", "a": "homework_default", "b": "q1_seed~1"}
    with pytest.raises(ConfigError, match=r"questions\[1\] \(Q1\)\.name: duplicate"):
        check_questions([question, question], st.EXPERIMENTS, [])
    check_questions([question, {**question, "name": "Q4", "categories": "all"}], st.EXPERIMENTS, [])


def test_sweeps_have_one_line_per_other_setting(tables):
    experiments, _ = tables
    summary = statistics.group_summary(experiments)
    assert comparisons.swept_params(summary) == ["num_epoch", "support_ratio", "beta", "lora_r"]
    lines = dict(comparisons.sweep_lines(summary, "beta"))
    assert set(lines) == {"lora_r=8", "lora_r=16"}
    assert list(lines["lora_r=16"]["beta"]) == [0.05, 0.1, 0.5]  # q1 (beta 0.1) lies on this line
    pivot = comparisons.sweep_table(summary, "beta")
    q1 = pivot[(pivot["group"] == "q1") & (pivot["metric"] == "support_rate_after")].iloc[0]
    assert q1["n"] == 3 and q1["sd"] == pytest.approx(np.std(q1_rates(), ddof=1))


def test_stance_shift_per_category(tables):
    experiments, responses = tables
    shifts = comparisons.stance_shift(responses, experiments).set_index(["group", "category"])
    assert shifts.loc[("homework_default", "test"), "shift"] == pytest.approx(-0.3)
    assert shifts.loc[("q1", "test"), "shift"] == pytest.approx(np.mean(q1_rates()) - 0.3)
    assert shifts.loc[("q1", "other_style"), "shift_n"] == 3


def test_stage_outputs_html_escapes_answers_and_marks_changed_stances(study, tmp_path):
    experiments, responses = study
    out = tmp_path / "out"
    report.write_question_tables(experiments, responses, str(out / "questions"), st.QUESTIONS)
    report.write_sweep_tables(experiments, str(out / "sweeps"))
    report.write_response_tables(responses, str(out / "responses"))
    report.write_summary_table(experiments, str(out / "summary.csv"), str(out / "summary.html"))
    assert sorted(p.name for p in (out / "questions").glob("*.html")) == ["Q1.html", "Q2.html", "Q4.html"]
    assert sorted(p.stem for p in (out / "sweeps").glob("*.html")) == ["beta", "lora_r", "num_epoch", "support_ratio"]
    q1 = (out / "questions/Q1.html").read_text()
    assert "<table>" in q1 and "difference b − a" in q1 and "0.867 ± 0.0577 (n=3; 95% CI 0.723 to 1.01)" in q1
    page = (out / "responses/homework_default.html").read_text()
    assert "&lt;b&gt;support&lt;/b&gt;" in page and "<b>support" not in page
    assert page.count('<tr class="changed">') == 3 + 2  # 3 test answers and one probe per category flipped
    # What fits at 1400 px: prompt, both answers and both stances; every other measure one click away.
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", page)[1]
    assert re.findall(r"<th>(.*?)</th>", header) == ["prompt id", "prompt", "before DPO", "after DPO", "stance before",
                                                    "stance after", "other measures"]
    assert "<details><summary>" in page
    assert pd.read_csv(out / "summary.csv")["group"].tolist()[:2] == ["homework_default", "q1"]


def image_is_drawn(path):
    pixels = matplotlib.image.imread(path)
    return pixels.shape[0] > 100 and pixels.shape[1] > 100 and float(pixels[..., :3].std()) > 0.05


def test_plots_are_drawn_per_swept_parameter(study, tmp_path):
    experiments, responses = study
    plots.plot_sweeps(experiments, responses, str(tmp_path / "sweeps"))
    plots.plot_length_vs_epochs(experiments, str(tmp_path / "length.png"))
    plots.plot_stance_heatmap(experiments, responses, str(tmp_path / "heatmap.png"))
    names = sorted(p.name for p in (tmp_path / "sweeps").iterdir())
    assert names == [f"support_rate_vs_{p}.png" for p in ["beta", "lora_r", "num_epoch", "support_ratio"]]
    for path in [*(tmp_path / "sweeps").iterdir(), tmp_path / "length.png", tmp_path / "heatmap.png"]:
        assert image_is_drawn(path), path


def test_training_curves_per_seed_group(tmp_path):
    names = ["a", "b_seed~1", "b_seed~2"]
    records, logs = [], []
    for index, name in enumerate(names):
        params = {**st.DEFAULTS, "support_ratio": 0.0 if name == "a" else 1.0, "seed": index}
        records.append({"name": name, **params})
        log = tmp_path / f"{name}.csv"
        pd.DataFrame({"step": [1, 2, 3], "epoch": [0.33, 0.67, 1.0], "loss": [0.69, 0.5, 0.3],
                      "rewards/margins": [0, 0.4, 0.9], "rewards/accuracies": [0.5, 0.75, 1.0]}).to_csv(log)
        logs.append(str(log))
    plots.plot_training_curves(logs, str(tmp_path / "training"), records)
    assert sorted(p.name for p in (tmp_path / "training").iterdir()) == ["a.png", "b.png"]
    assert image_is_drawn(tmp_path / "training/b.png")


def sentences(sections, language="en"):
    return [findings.render(s, language) for section in sections for s in section.sentences]


def test_findings_follow_the_portfolios_four_headings_each_with_a_number_and_a_table(tables):
    experiments, responses = tables
    intro, sections = findings.findings(experiments, responses, st.QUESTIONS, [])
    text = findings.markdown(intro, sections)
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## 1. Systematic hyperparameter tuning and impact analysis",
        "## 2. Qualitative analysis of response changes and case studies",
        "## 3. Exploring different preference data construction strategies",
        "## 4. Preliminary boundary testing and robustness checks"]
    for section in sections:
        assert section.table and len(section.sentences) <= 8, section.number
        for sentence in sentences([section]):
            assert re.search(r"\d", sentence), sentence
    assert "nan" not in text
    # The procedure is named once, at the top; no second test anywhere.
    assert text.count("two-way bootstrap") == 1 and "sign test" not in text and "t interval" not in text


def test_each_comparison_has_one_verdict_from_the_stated_procedure(tables):
    experiments, responses = tables
    intro, sections = findings.findings(experiments, responses, st.QUESTIONS, [])
    text = " ".join(sentences(sections))
    # Q1: 0 vs 0.867 over 3 seeds; 8 or 9 of the 10 test prompts moved in each seed.
    assert ("Q1 (support_ratio 0 vs 1), support rate after DPO on the 10 test prompts: homework_default 0 → "
            "q1 0.867 ± 0.0577 (n=3); b − a = +0.867 (95% CI +0.633 to +1, 10 prompts): established.") in text
    # Q2 differs by one prompt of ten: not established, with what would establish it at the observed spread.
    assert ("b − a = −0.1 (95% CI −0.3 to +0, 10 prompts): not established; at the observed spread, about 25 "
            "prompts would establish it.") in text
    # A sweep line whose ends are Q1's or Q2's sides has its verdict there, not a second one.
    assert "Sweep of support_ratio" not in text and "Sweep of num_epoch" not in text
    # The beta line at lora_r=8: one verdict, its ends.
    assert "Sweep of beta (lora_r=8), support rate after DPO: beta=0.05: 0.5; beta=0.5: 0.9; " in text
    # Every verdict phrase is one of the procedure's: established, not established, or no valid measurement.
    verdicts = re.findall(r"\): (established|not established|no valid measurement)", text)
    assert len(verdicts) == text.count(" = ")
    # Two probes that both moved: [1, 1], but below the procedure's minimum of prompts.
    robustness = {row[1]: findings.render(row[-1], "en") for row in sections[3].table[1:]}
    assert robustness["in_distribution"] == "not established (about 6 prompts, 3 seeds a side)"
    assert "All 7 groups use the rejected-example strategy swap" in text


def test_defect_table_shows_only_the_defects_that_occur(tables):
    experiments, responses = tables
    _, sections = findings.findings(experiments, responses, st.QUESTIONS, [])
    defects = sections[1]
    assert [findings.render(c, "en") for c in defects.table[0]] == ["group", "too long"]
    assert findings.render(defects.table[1][0], "en") == "base model"
    # The group whose share moved furthest from the base model's, against it: all 10 test answers too long.
    assert ("too long: the base model 0 of the test answers, after DPO most in bs_beta~0.05_lora_r~8 (1); "
            "bs_beta~0.05_lora_r~8 − base model = +1 (95% CI +1 to +1, 10 prompts): established.") in sentences([defects])
    clean = responses.assign(aligned_too_long=False)
    _, sections = findings.findings(experiments, clean, st.QUESTIONS, [])
    answers = st.TEST_PROMPTS * (1 + len(st.EXPERIMENTS))  # the base model's and each run's
    assert sentences([sections[1]]) == [f"No answer defect occurred in the {answers} test answers of the base model "
                                        "and of every run."]
    assert sections[1].table == []


def numbers_and_names(text: str, names) -> tuple[list[str], list[str]]:
    """Every number (with its sign) and every experiment name in the text, in order of appearance."""
    numbers = re.findall(r"[+−-]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[+−-]?\d+)?", text)
    found = [n for n in sorted(names, key=len, reverse=True) for _ in range(text.count(n))]
    return sorted(numbers), sorted(found)


def test_the_chinese_findings_carry_the_same_numbers_and_experiment_names(study, tmp_path):
    experiments, responses = study
    judge = tmp_path / "judge.json"
    judge.write_text('{"judge": "ngram", "holdout": {"examples": 54, "accuracy": 0.8148}}')
    findings.write_findings(experiments, responses, str(tmp_path / "findings.md"), str(tmp_path / "findings.html"),
                            st.QUESTIONS, [str(judge)])
    english = (tmp_path / "findings.md").read_text()
    chinese = (tmp_path / "findings.zh-Hant.md").read_text()
    names = list(st.EXPERIMENTS) + ["homework_default", "q1", "q2_num_epoch_1"]
    assert numbers_and_names(english, names) == numbers_and_names(chinese, names)
    assert numbers_and_names(english, names)[0]  # the comparison is not vacuous
    assert [line for line in chinese.splitlines() if line.startswith("## ")] == [
        "## 1. 系統性超參數調校與影響分析", "## 2. 模型回答質性分析與案例研究", "## 3. 探索不同偏好數據建構策略",
        "## 4. 對齊後模型的邊界測試與魯棒性初探"]
    assert "**發現**：" in chinese and "**洞見**：" in chinese and "**初步觀察**：" in chinese
    assert len(english.splitlines()) == len(chinese.splitlines())  # the same structure, line by line


def test_findings_files(study, tmp_path):
    experiments, responses = study
    judge = tmp_path / "judge.json"
    judge.write_text('{"judge": "ngram", "holdout": {"examples": 54, "accuracy": 0.8148}}')
    findings.write_findings(experiments, responses, str(tmp_path / "findings.md"), str(tmp_path / "findings.html"),
                            st.QUESTIONS, [str(judge)])
    text = (tmp_path / "findings.md").read_text()
    assert text.startswith("# Findings") and "## 4. Preliminary boundary testing and robustness checks" in text
    assert "Stances come from the ngram judge, which agrees with 0.815 of 54 labelled hold-out texts." in text
    assert "|  | category | prompts (valid pairs) |" in text  # section 4's table
    assert "<h2>1. Systematic hyperparameter tuning and impact analysis</h2>" in (tmp_path / "findings.html").read_text()
    assert (tmp_path / "findings.zh-Hant.md").read_text().startswith("# 研究發現")
