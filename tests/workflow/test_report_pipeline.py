"""The report of the shared demo study (tests/conftest.py: demo_study): its files, and the HTML report
from `snakemake --report` read in a real headless Chromium."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import browser
from conftest import DEMO_EXPERIMENTS, DEMO_QUESTIONS
from dpo_study.stages.findings import estimate_phrase
from dpo_study.analysis.labels import fmt
from dpo_study.analysis.statistics import Estimate
from snakemake_helpers import snakemake, study_prompts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def html_report(demo_study):
    workdir, config = demo_study
    snakemake(workdir, config, "--report", "results/report.html")
    return workdir / "results/report.html"


def experiments(workdir) -> pd.DataFrame:
    return pd.read_csv(workdir / "results/tables/experiments.csv").set_index("experiment")


def test_question_tables_and_findings_hold_the_measured_values(demo_study):
    workdir, _ = demo_study
    table = experiments(workdir)
    ratio_1 = Estimate.of(table.loc[["ratio_1", "ratio_1_seed7"], "support_rate_after"])
    ratio_0 = table.loc["ratio_0", "support_rate_after"]
    q1 = pd.read_csv(workdir / "results/report/questions/Q1.csv").set_index("metric")
    support = q1.loc["support_rate"]
    assert (support["a_n"], support["b_n"]) == (1, 2)
    assert (support["a_mean"], support["b_mean"]) == (pytest.approx(ratio_0), pytest.approx(ratio_1.mean))
    assert support["low"] <= support["difference"] <= support["high"]
    q4 = pd.read_csv(workdir / "results/report/questions/Q4.csv")
    probe_categories = set(study_prompts(workdir / "results")["category"])
    assert set(q4["category"].dropna()) == probe_categories  # and blank: the run as a whole
    findings = (workdir / "results/findings.md").read_text()
    ratio_1_text = estimate_phrase(ratio_1).render("en")
    assert (f"Q1 (support_ratio 0 vs 1), support rate after DPO on the 10 test prompts: ratio_0 {fmt(ratio_0)} → "
            f"ratio_1 {ratio_1_text}; b − a = ") in findings
    for theme in ["1. Systematic hyperparameter tuning", "2. Qualitative analysis of response changes",
                  "3. Exploring different preference data construction", "4. Preliminary boundary testing"]:
        assert f"## {theme}" in findings
    assert "nan" not in findings.replace("nanny", "")
    chinese = (workdir / "results/findings.zh-Hant.md").read_text()
    assert f"ratio_0 {fmt(ratio_0)} → ratio_1 {estimate_phrase(ratio_1).render('zh-Hant')}" in chinese


def test_report_opens_every_table_and_plot_in_chromium(html_report, tmp_path):
    record = browser.walk(html_report, tmp_path)
    assert record["done"] and not record["errors"], record["errors"]
    assert {"Findings", "Questions", "Tables", "Sweeps", "Plots", "Training curves", "Responses"} <= set(record["menu"])
    shown = {Path(r["path"]).name: r for r in record["results"] if r.get("path")}
    expected_pages = ["findings.html", "experiments_summary.html", "support_ratio.html",
                      *[f"{q['name']}.html" for q in DEMO_QUESTIONS],
                      *[f"{e['name']}.html" for e in DEMO_EXPERIMENTS]]
    expected_plots = ["stance_shift_heatmap.png", "length_vs_epochs.png", "support_rate_vs_support_ratio.png",
                      "ratio_0.png", "ratio_1.png"]  # ratio_1 and ratio_1_seed7: one seed group
    for name in expected_pages:
        assert shown[name]["shown"] == "iframe", shown.get(name)
        assert shown[name]["tables"] >= 1 or name == "findings.html", shown[name]
    for name in expected_plots:
        assert shown[name]["shown"] == "img" and shown[name]["width"] > 300, shown[name]
    q1 = shown["Q1.html"]
    assert q1["title"].startswith("Q1: support_ratio 0 vs 1") and q1["rows"] >= 5
    # one row per answer pair (and the header), each with its other measures in a table of its own
    prompts = len(study_prompts(html_report.parent))
    assert shown["ratio_0.html"]["rows"] == 1 + prompts and shown["ratio_0.html"]["nested_tables"] == prompts


@pytest.mark.parametrize("result", ["stance_shift_heatmap.png", "questions/Q1.html"])
def test_report_screenshot_shows_the_result(html_report, tmp_path, result):
    png = browser.screenshot(html_report, tmp_path, result)
    pixels = matplotlib.image.imread(png)[..., :3]
    content = pixels[:, pixels.shape[1] // 4:]  # right of the menu
    colours = np.unique((content * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert content.std() > 0.05 and len(colours) > 20, (png, content.std(), len(colours))
