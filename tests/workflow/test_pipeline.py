"""End to end on the embedded demo model, through the snakemake command line (about 4 minutes)."""

import json
import re

import pandas as pd
import pytest

from conftest import DEMO_EXPERIMENTS, DEMO_QUESTIONS, REPO
from dpo_study.stages.data import read_jsonl
from snakemake_helpers import only, scheduled_jobs, snakemake, study_prompts, workdir_with_config

pytestmark = pytest.mark.slow

# Measured on the demo model (seed 1, pretrained on data/demo_pretrain.json, answers that echo the
# question; `make demo`, 2026-12-05): support rate after DPO over the valid answers to the test
# prompts 0.125 (support_ratio 0) and 1.0 (support_ratio 1) with run seed 42, 0.22 and 0.89 with
# seed 1, from a base rate of 0.5: margins 0.875 and 0.67. (A model built on another machine's CPU
# differs, and its rates with it.)
MIN_Q1_MARGIN = 0.5
# Measured on the same model: the relevance gate keeps 18 of the base model's 20 answers to the
# test and in-distribution prompts (the goal: 18; docs/measures.md); the test asks for one fewer.
# The judge sees a clear stance in 9 of its 10 test answers: answer 59's garbled echo
# ("packial's painterviews backages"), words the judge never saw, pulls its score to 0.65. On
# average 0.91 of a base test answer's words are known words or the question's (0.79 the least).
MIN_KNOWN_WORDS = 0.8
MIN_BASE_KEPT = 0.85
MIN_CLEAR_STANCE = 0.8
# Measured hold-out accuracy (data/judge_holdout.json, 54 texts): ngram 0.81, embedding 0.78; chance is 1/3.
MIN_TRAINED_JUDGE_ACCURACY = 0.6

EXPERIMENTS = DEMO_EXPERIMENTS


@pytest.fixture
def study(demo_study):
    return demo_study


def experiments_table(workdir):
    return pd.read_csv(workdir / "results/tables/experiments.csv").set_index("experiment")


def test_support_ratio_1_moves_stance_towards_support(study):
    workdir, _ = study
    table = experiments_table(workdir)
    margin = table.loc["ratio_1", "support_rate_after"] - table.loc["ratio_0", "support_rate_after"]
    assert margin >= MIN_Q1_MARGIN, table
    assert table.loc["ratio_1", "support_rate_after"] > table.loc["ratio_1", "support_rate_before"]
    assert table.loc["ratio_0", "support_rate_after"] < table.loc["ratio_0", "support_rate_before"]


def test_demo_model_is_readable_and_not_pre_aligned(study):
    """Sentences with a clear stance, of words from the training answers, its pretraining answers
    (data/demo_pretrain.json) or the question itself (the subject it restates); not pre-aligned."""
    workdir, _ = study
    base = pd.read_csv(only(workdir.glob("results/demo-*/model-*/base/generation-*/judge-*/stances/test.csv")),
                       dtype={"id": str})
    test = base[base["set"] == "test"]
    assert 0.2 <= (test["stance"] == "support").mean() <= 0.8
    train = json.loads((REPO / "data/train.json").read_text())
    pretrain = json.loads((REPO / "data/demo_pretrain.json").read_text())
    words_of = lambda text: re.findall(r"[\w'-]+", text)  # noqa: E731
    vocabulary = {w.lower() for r in train for t in (r["support"], r["oppose"]) for w in words_of(t)}
    vocabulary |= {w.lower() for t in pretrain["support"] + pretrain["oppose"] for w in words_of(t.replace("{thing}", ""))}
    known = []
    for prompt, answer in zip(test["prompt"], test["response"]):
        words = words_of(answer)
        known.append(sum(w.lower() in vocabulary | {q.lower() for q in words_of(prompt)} for w in words) / max(len(words), 1))
        assert len(words) >= 6 and answer.endswith((".", "!")), answer
    # The judge sees a clear stance in most answers (MIN_CLEAR_STANCE: measured 9 of 10). Each answer
    # used to be asked for it when answers held no copied subject.
    clear = (test["support_score"] - 0.5).abs() >= 0.2
    assert clear.mean() >= MIN_CLEAR_STANCE, test.loc[~clear, ["response", "support_score"]]
    # Its copies of a subject are not always exact ("celebies" for "celebrities"): on average.
    assert sum(known) / len(known) >= MIN_KNOWN_WORDS, list(zip(test["response"], known))


def test_demo_model_answers_the_question_it_is_asked(study):
    """The relevance gate keeps most of the base model's answers to the test and in-distribution prompts."""
    workdir, _ = study
    responses = pd.read_csv(workdir / "results/tables/responses.csv")
    base = responses[responses["experiment"] == responses["experiment"].iloc[0]]
    asked = base[(base["set"] == "test") | (base["category"] == "in_distribution")]
    assert len(asked) == 20 and asked["original_valid"].mean() >= MIN_BASE_KEPT, asked[["prompt", "original_response"]]


def test_tables_and_submissions(study):
    workdir, _ = study
    table = experiments_table(workdir)
    assert list(table.reset_index().columns[:10]) == [
        "experiment", "num_epoch", "data_size", "support_ratio", "beta", "lora_r", "lora_alpha",
        "learning_rate", "strategy", "seed"]
    assert (table["rewards_accuracies"] >= 0).all() and (table["train_seconds"] > 0).all()
    responses = pd.read_csv(workdir / "results/tables/responses.csv")
    assert len(responses) == len(EXPERIMENTS) * len(study_prompts(workdir / "results"))
    submission = json.loads((workdir / "results/submissions/ratio_1.json").read_text())
    assert (submission["num_epoch"], submission["data_size"], submission["support_ratio"]) == (3, 50, 1)
    assert [r["id"] for r in submission["results"]] == list(range(51, 61))
    assert set(submission["results"][0]) == {"id", "prompt", "original_response", "aligned_response"}
    run = next(workdir.glob("results/demo-*/model-*/runs/training-*/*"))
    assert (run / "adapter/adapter_model.safetensors").is_file()
    log = pd.read_csv(run / "train_log.csv")
    for column in ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                   "grad_norm", "learning_rate"]:
        assert column in log.columns
    assert len(log) == json.loads((run / "train_summary.json").read_text())["steps"]


def test_no_change_schedules_nothing(study):
    workdir, config = study
    result = snakemake(workdir, config, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_beta_reruns_only_that_experiment(study):
    workdir, _ = study
    changed = workdir_with_config(
        workdir,
        {"experiments": [EXPERIMENTS[0], {**EXPERIMENTS[1], "beta": 0.2}, *EXPERIMENTS[2:]],
         "questions": DEMO_QUESTIONS},
        name="changed.yaml",
    )
    result = snakemake(workdir, changed, "-n")
    jobs = scheduled_jobs(result.stdout)
    # One experiment's jobs, then everything that reads all experiments: the tables and the report.
    report_jobs = ["summary_table", "question_tables", "sweep_tables", "response_tables", "training_curves",
                   "sweep_plots", "length_plot", "stance_heatmap", "findings"]
    # Generation, judging and implicit rewards run per prompt set: the test prompts and config/probes.yaml.
    assert jobs == {"train_adapter": 1, "generate_aligned": 2, "judge_aligned": 2, "measure_aligned": 2, "implicit_reward": 2,
                    "submission": 1, "tables": 1, "aggregate_tables": 1, **dict.fromkeys(report_jobs, 1), "all": 1}


def test_changing_the_seed_of_a_swap_experiment_keeps_its_pairs(study):
    workdir, _ = study
    changed = workdir_with_config(
        workdir, {"experiments": [EXPERIMENTS[0], {**EXPERIMENTS[1], "seed": 8}, *EXPERIMENTS[2:]],
                  "questions": DEMO_QUESTIONS}, name="seed.yaml",
    )
    jobs = scheduled_jobs(snakemake(workdir, changed, "-n").stdout)
    assert jobs["train_adapter"] == 1 and "prepare_pairs" not in jobs


def test_on_policy_rejects_the_demo_models_own_answers(study):
    workdir, _ = study
    assert not list(workdir.glob("results/**/train_responses.jsonl"))  # the swap study did not need them
    # Short answers, so that the demo model's (otherwise memorised) answers differ from the data's.
    config = workdir_with_config(
        workdir, {"experiments": [{"name": "on_policy", "strategy": "on_policy"}], "questions": [],
                  "generation": {"max_new_tokens": 12}}, name="on_policy.yaml",
    )
    # The model's own pairs: under its answers, keyed by the generation settings they were made with.
    answers = "results/demo-default/model-load_in_4bit~False/base/generation-max_new_tokens~12"
    pairs = f"{answers}/pairs/data_size~50_support_ratio~0_strategy~on_policy.jsonl"
    base_answers = workdir / answers / "train_responses.jsonl"
    snakemake(workdir, config, pairs)
    train = json.loads((REPO / "data/train.json").read_text())
    answers = read_jsonl(base_answers)
    assert [a["id"] for a in answers] == [str(row["id"]) for row in train]
    assert all(a["new_tokens"] <= 12 and a["response"] for a in answers)
    by_id = {a["id"]: a["response"] for a in answers}
    built = read_jsonl(workdir / pairs)
    assert len(built) == 50
    for pair, row in zip(built, train):
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen == row["oppose"]
        assert rejected == (by_id[str(row["id"])] if by_id[str(row["id"])] != chosen else row["support"])
    assert sum(p["rejected"][0]["content"] not in (row["support"], row["oppose"]) for p, row in zip(built, train)) >= 40


def test_judges_report_their_own_accuracy(study):
    workdir, config = study
    judges = pd.read_csv(workdir / "results/tables/judges.csv").set_index("judge")
    assert list(judges.index) == ["ngram", "embedding", "llm"] and judges.loc["ngram", "primary"]
    for name in judges.index:
        report = json.loads(only(workdir.glob(f"results/judge/judge-*/{name}_accuracy.json")).read_text())
        assert report["holdout"]["examples"] == len(json.loads((REPO / "data/judge_holdout.json").read_text()))
        assert judges.loc[name, "holdout_accuracy"] == report["holdout"]["accuracy"]
    # The trained judges beat chance (1/3) on the hold-out by far.
    assert (judges.loc[["ngram", "embedding"], "holdout_accuracy"] >= MIN_TRAINED_JUDGE_ACCURACY).all()


def test_per_response_measures_and_summaries(study):
    workdir, _ = study
    header = (workdir / "results/tables/responses.csv").read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header)), sorted(c for c in header if header.count(c) > 1)
    responses = pd.read_csv(workdir / "results/tables/responses.csv", dtype={"id": str})
    for side in ("original", "aligned"):
        assert (responses[f"{side}_chars"] == responses[f"{side}_response"].fillna("").str.len()).all()
        # Compliance is blank exactly where the system prompt sets no length limit.
        limited = responses["length_limit"].notna()
        assert responses.loc[~limited, f"{side}_within_limit"].isna().all()
        within = responses.loc[limited, f"{side}_within_limit"].astype(bool)
        assert (within == (responses.loc[limited, f"{side}_chars"] <= responses.loc[limited, "length_limit"])).all()
        assert limited.sum() > 0 and (~limited).sum() > 0
        assert set(responses[f"{side}_stance"]) <= {"support", "oppose", "neutral"}
        for judge in ("ngram", "embedding", "llm"):
            assert responses[f"{side}_{judge}_score"].between(-1, 1).all()
    # DPO raises the policy's likelihood of its own answers over the reference's: positive rewards.
    experiments = experiments_table(workdir)
    assert (experiments["mean_implicit_reward"] > 0).all(), experiments["mean_implicit_reward"]
    prompts = study_prompts(workdir / "results")
    categories = pd.read_csv(workdir / "results/tables/categories.csv")
    assert set(categories["category"]) == set(prompts["category"])
    assert categories.groupby("experiment")["prompts"].sum().tolist() == [len(prompts)] * len(EXPERIMENTS)
    generalisation = pd.read_csv(workdir / "results/tables/generalisation.csv").set_index(["experiment", "category"])
    assert set(generalisation.index.get_level_values("category")) == set(prompts["category"]) - {"test"}
    # ratio_1 moves the test prompts towards support and ratio_0 away from it, far apart. (Measured on
    # the demo's runs of the same settings, 2026-12-05: +0.71 and -0.40 in stance score.)
    test_shift = generalisation.groupby("experiment")["test_stance_shift"].first()
    assert test_shift["ratio_1"] > 0 > test_shift["ratio_0"], test_shift
    assert test_shift["ratio_1"] - test_shift["ratio_0"] > MIN_Q1_MARGIN, test_shift
    defects = pd.read_csv(workdir / "results/tables/defects.csv")
    assert set(defects["defect"]) == {"too_neutral", "no_clear_stance", "too_long", "one_sided_on_balance", "collapsed",
                                      "off_topic", "wrong_language", "truncated"}
    # Validity: an answer is valid exactly when no reason stands against it; stance rates count valid ones.
    for side in ("original", "aligned"):
        reasons = responses[[f"{side}_{r}" for r in ("collapsed", "off_topic", "wrong_language", "truncated")]]
        assert (responses[f"{side}_valid"] == ~reasons.astype(bool).any(axis=1)).all()
        assert responses[f"{side}_relevance"].notna().all()
        assert (responses[f"{side}_perplexity"] > 1).all()
