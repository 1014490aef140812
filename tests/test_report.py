"""Report tables, plots and findings on a hand-written study (tests/study_tables.py), without Snakemake."""

import math
import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import study_tables as st
from dpo_study import findings, plots, report
from dpo_study.validation import ConfigError


@pytest.fixture
def study(tmp_path):
    experiments, responses = st.write_study(tmp_path / "tables")
    return experiments, responses


@pytest.fixture
def tables(study):
    return report.read_experiments(study[0]), report.read_responses(study[1])


def q1_rates():
    return [st.EXPERIMENTS[f"q1_seed~{s}"][1] / st.TEST_PROMPTS for s in (1, 2, 3)]


def test_seed_group_is_mean_and_sample_sd_over_its_seeds(tables):
    experiments, _ = tables
    summary = report.group_summary(experiments).set_index("group")
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
    summary = report.group_summary(pd.concat([experiments, alias])).set_index("group")
    assert summary.loc["q1", "support_rate_after_n"] == 3


def test_question_compares_seed_groups_with_base_and_difference(tables):
    experiments, responses = tables
    table = report.question_table(st.QUESTIONS[0], experiments, responses).set_index("metric")
    support = table.loc["support_rate"]
    assert (support["a_group"], support["b_group"]) == ("homework_default", "q1")
    assert support["base"] == pytest.approx(st.BASE_SUPPORTING / st.TEST_PROMPTS)
    assert support["b_n"] == 3 and support["a_n"] == 1
    assert support["difference"] == pytest.approx(np.mean(q1_rates()) - 0.0)
    assert support["prompts"] == st.TEST_PROMPTS
    # Metrics the report does not know are compared too; text columns are not.
    assert "defects_too_long" in table.index and "git_commit" not in table.index
    assert table.loc["defects_too_long", "base"] == 1


def test_category_question_has_one_block_per_prompt_category(tables):
    experiments, responses = tables
    table = report.question_table(st.QUESTIONS[2], experiments, responses)
    assert list(dict.fromkeys(table["category"])) == ["test", *st.PROBES]
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
        report.check_questions([question], st.EXPERIMENTS, list(st.PROBES))


def test_duplicate_question_name_is_rejected():
    question = {"name": "Q1", "a": "homework_default", "b": "q1_seed~1"}
    with pytest.raises(ConfigError, match=r"questions\[1\] \(Q1\)\.name: duplicate"):
        report.check_questions([question, question], st.EXPERIMENTS, [])
    report.check_questions([question, {**question, "name": "Q4", "categories": "all"}], st.EXPERIMENTS, [])


def test_sweeps_have_one_line_per_other_setting(tables):
    experiments, _ = tables
    summary = report.group_summary(experiments)
    assert report.swept_params(summary) == ["num_epoch", "support_ratio", "beta", "lora_r"]
    lines = dict(report.sweep_lines(summary, "beta"))
    assert set(lines) == {"lora_r=8", "lora_r=16"}
    assert list(lines["lora_r=16"]["beta"]) == [0.05, 0.1, 0.5]  # q1 (beta 0.1) lies on this line
    pivot = report.sweep_table(summary, "beta")
    q1 = pivot[(pivot["group"] == "q1") & (pivot["metric"] == "support_rate_after")].iloc[0]
    assert q1["n"] == 3 and q1["sd"] == pytest.approx(np.std(q1_rates(), ddof=1))


def test_stance_shift_per_category(tables):
    experiments, responses = tables
    shifts = report.stance_shift(responses, experiments).set_index(["group", "category"])
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
    assert "<table>" in q1 and "difference b − a" in q1 and "0.867 ± 0.0577 (n=3)" in q1
    page = (out / "responses/homework_default.html").read_text()
    assert "&lt;b&gt;support&lt;/b&gt;" in page and "<b>support" not in page
    assert page.count('<tr class="changed">') == 3 + 2  # 3 test answers and one probe per category flipped
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


def sentences(sections):
    return [s for section in sections for paragraph in section.paragraphs for s in paragraph]


def test_every_finding_carries_a_number(tables):
    experiments, responses = tables
    written = sentences(findings.findings(experiments, responses, st.QUESTIONS, [{"judge": "ngram", "cv_folds": 5,
                                                                                  "cv_accuracy": 0.97}]))
    assert len(written) > 20
    for sentence in written:
        assert re.search(r"\d", sentence), sentence
    assert [s.title for s in findings.findings(experiments, responses, [], [])][2:] == [
        "1. Hyperparameter impact", "2. Qualitative answer changes", "3. Data-construction strategies",
        "4. Robustness on probes"]


def test_findings_say_when_the_data_cannot_carry_a_claim(tables):
    experiments, responses = tables
    text = " ".join(sentences(findings.findings(experiments, responses, st.QUESTIONS, [])))
    # Q2 differs by one prompt of ten (0.1), one seed each.
    assert "A difference of 0.1 is one prompt of 10, the smallest step a rate over 10 prompts can take" in text
    # Q1: one side has one seed.
    assert "With 1 seed on one side, the seed-to-seed spread is unknown: the difference of +0.867" in text
    assert "the rejected-example strategy 'swap': the study holds no evidence on other strategies" in text
    assert "moves in steps of 0.5" in text  # two probes per category


def test_findings_tell_an_effect_from_seed_noise():
    many = findings.evidence(0.5, report.Estimate(0.2, 0.05, 3), report.Estimate(0.7, 0.05, 3), 10)
    assert many.startswith("The difference is 12.2 times its standard error (0.0408, over 3 and 3 seeds)")
    assert "stands out from seed noise" in many
    noisy = findings.evidence(0.2, report.Estimate(0.4, 0.3, 3), report.Estimate(0.6, 0.3, 3), 10)
    assert "cannot be told from seed noise" in noisy
    one_seed = findings.evidence(12.0, report.Estimate(80, math.nan, 1), report.Estimate(92, math.nan, 1))
    assert one_seed.startswith("With 1 seed on each side") and "+12" in one_seed
    tiny = findings.size_evidence(0.3, 91.1, report.Estimate(91.3, math.nan, 1), report.Estimate(91.6, math.nan, 1),
                                  "characters")
    assert tiny == "A difference of 0.3 characters is 0.329% of the base model's 91.1: too small to read as an effect."
    assert findings.size_evidence(12.0, 80, report.Estimate(80, math.nan, 1), report.Estimate(92, math.nan, 1),
                                  "characters") == ""


def test_findings_files(study, tmp_path):
    experiments, responses = study
    judge = tmp_path / "judge.json"
    judge.write_text('{"judge": "ngram", "cv_folds": 5, "cv_accuracy": 0.9667}')
    findings.write_findings(experiments, responses, str(tmp_path / "findings.md"), str(tmp_path / "findings.html"),
                            st.QUESTIONS, [str(judge)])
    text = (tmp_path / "findings.md").read_text()
    assert text.startswith("# Findings") and "## 4. Robustness on probes" in text
    assert "5-fold cross-validated accuracy on the training data's own support and oppose answers is 0.967" in text
    assert "<h2>1. Hyperparameter impact</h2>" in (tmp_path / "findings.html").read_text()
