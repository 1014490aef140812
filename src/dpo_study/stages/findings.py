"""results/findings.md (and findings.zh-Hant.md): the study's findings under the portfolio's four
headings, every number computed.

1. hyperparameters (each question and sweep of a training parameter; stability, fluency, over-fitting),
2. answer defects before and after DPO with cases quoted by a stated rule, 3. preference data
construction (support_ratio, data_size, rejected-example strategies), 4. robustness on the probes.

Every comparison gets exactly one verdict, from the one procedure that statistics.PROCEDURE states
(named once, at the top of the page): a two-way bootstrap over prompts and seeds. Stance rates count
valid answers only (dpo_study.analysis.metrics.validity). Where a comparison is not established, its sentence
says how many prompts and seeds would establish it at the observed spread. The page is built once
as language-neutral phrases (findings_text) and written in each language with the same values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from dpo_study.config import atomic
from dpo_study.stages.cases import qualitative
from dpo_study.analysis.comparisons import (
    count_test_prompts, group_change, prompt_categories, prompt_run_table, read_experiments, read_responses,
    sweep_lines, swept_params, valid, with_group,
)
from dpo_study.analysis.questions import question_title
from dpo_study.config.questions import TEST_CATEGORY, question_categories
from dpo_study.config.experiments import DATA_PARAMS, format_value
from dpo_study.stages.findings_text import (  # noqa: F401 (render: for callers of findings())
    FILE_SUFFIX, LANGUAGES, PROCEDURE_VALUES, Joined, Phrase, Section, html_document, markdown, render,
)
from dpo_study.analysis.labels import fmt
from dpo_study.analysis.metrics import INVALID_REASONS
from dpo_study.analysis.stability import SPIKE_FACTOR, SPIKE_WINDOW
from dpo_study.analysis.statistics import (
    CONFIDENCE, Change, Estimate, estimate, group_of, group_summary, percent, runs,
)

# Section 3 holds what shapes the preference pairs; section 1 the training hyperparameters.
DATA_SECTION_PARAMS = tuple(DATA_PARAMS)
TRAINING_PARAMS = ("num_epoch", "beta", "lora_r", "lora_alpha", "learning_rate")
HOMEWORK_STRATEGY = "swap"
METRIC = "support_rate"  # what every question, sweep and strategy comparison is judged on


# ---- verdicts ------------------------------------------------------------------------------


def estimate_phrase(e: Estimate) -> Phrase:
    """mean ± sd (n) over seeds, without an interval: intervals belong to comparisons."""
    if e.n <= 1:
        return Phrase("estimate_one", {"mean": fmt(e.mean)})
    return Phrase("estimate_seeds", {"mean": fmt(e.mean), "sd": fmt(e.sd), "n": e.n})


def verdict(change: Change, pairs: int) -> Phrase:
    """The one verdict of a comparison, with what would establish it when it is not."""
    if change.prompts == 0 or math.isnan(change.difference) or change.prompts < pairs / 2:
        return Phrase("no_measurement", {"valid": change.prompts, "prompts": pairs})
    values = {"difference": fmt(change.difference, signed=True), "prompts": change.prompts,
              "ci": Phrase("ci", {"confidence": percent(CONFIDENCE), "low": fmt(change.low, signed=True),
                                  "high": fmt(change.high, signed=True)})}
    if change.is_effect:
        return Phrase("established", values)
    if change.difference == 0 and change.low == change.high:
        return Phrase("unchanged", values)
    needed = change.needed()
    return Phrase("not_established", values) if needed is None else Joined((
        Phrase("not_established", values), need_phrase("would_need", needed)))


def need_phrase(key: str, needed: tuple[int, int]) -> Phrase:
    """How many prompts (and seeds, when a study has several) would establish a change."""
    prompts, seeds = needed
    return Phrase(key + "_one", {"prompts": prompts}) if seeds == 1 else Phrase(key, {"prompts": prompts, "seeds": seeds})


def verdict_cell(change: Change, pairs: int) -> Phrase:
    if change.prompts == 0 or change.prompts < pairs / 2:
        return Phrase("v_none")
    if change.is_effect:
        return Phrase("v_established")
    needed = change.needed()
    return Phrase("v_not") if needed is None else need_phrase("v_need", needed)


class Study:
    """The tables of a finished study, with the seed groups' answers to compare."""

    def __init__(self, experiments: pd.DataFrame, responses: pd.DataFrame):
        self.experiments, self.responses = experiments, responses
        self.summary = group_summary(experiments)
        self.answers = with_group(responses, experiments)
        self.group = group_of(experiments)

    def cell(self, group: str, category: str = TEST_CATEGORY) -> pd.DataFrame:
        part = self.answers
        return part[(part["group"] == group) & (part["category"] == category)]

    def compare(self, a: str, b: str, metric: str = METRIC, category: str = TEST_CATEGORY) -> tuple[Change, int]:
        """b − a after DPO (groups), seeds nested; and the prompts of the category."""
        first, second = self.cell(a, category), self.cell(b, category)
        change = group_change(first, second, metric, spread=True)
        return change, int(first["id"].nunique())

    def after(self, group: str, metric: str = METRIC) -> Estimate:
        row = self.summary.set_index("group").loc[group]
        return estimate(row, f"{metric}_after")

    def after_in(self, group: str, category: str, metric: str = METRIC) -> float:
        """The group's metric after DPO over a category: the mean over prompts of the seed means (the
        quantity whose difference a comparison tests)."""
        table = prompt_run_table(self.cell(group, category), metric, "aligned")
        return float(table.mean(axis=1).mean()) if table.notna().any().any() else math.nan


# ---- section 1 and 3: questions, sweeps, strategies ---------------------------------------


def question_phrase(study: Study, question: dict) -> Phrase:
    a, b = (study.group[question[s]] for s in ("a", "b"))
    change, prompts = study.compare(a, b)
    return Phrase("question", {"name": question["name"], "title": question_title(question), "prompts": prompts,
                               "a_group": a, "b_group": b, "a": estimate_phrase(study.after(a)),
                               "b": estimate_phrase(study.after(b)), "verdict": verdict(change, prompts)})


def sweep_phrases(study: Study, param: str, questions: list[dict] = ()) -> list[Phrase]:
    """One verdict per sweep line: its last point against its first (the ends of the line). A line
    whose ends are a question's two sides has its verdict there already."""
    asked = [{study.group[q["a"]], study.group[q["b"]]} for q in questions if q.get("categories") is None]
    phrases = []
    for setting, line in sweep_lines(study.summary, param):
        if {line["group"].iloc[0], line["group"].iloc[-1]} in asked:
            continue
        points = Joined(tuple(Phrase("sweep_point", {"param": param, "value": format_value(r[param]),
                                                     "estimate": estimate_phrase(estimate(r, f"{METRIC}_after"))})
                              for _, r in line.iterrows()))
        first, last = line["group"].iloc[0], line["group"].iloc[-1]
        change, prompts = study.compare(first, last)
        label = Phrase("other_settings_fixed") if setting == "other settings fixed" else setting
        phrases.append(Phrase("sweep", {"param": param, "setting": label, "points": points, "a_group": first,
                                        "b_group": last, "verdict": verdict(change, prompts)}))
    return phrases


def questions_on(questions: list[dict], experiments: pd.DataFrame, data: bool) -> list[dict]:
    """The questions over the test prompts whose two sides differ in data parameters (data=True) or not."""
    table = experiments.set_index("experiment")
    chosen = []
    for question in questions:
        if question.get("categories") is not None:
            continue
        differ = [p for p in (*DATA_SECTION_PARAMS, *TRAINING_PARAMS)
                  if p in table.columns and table.loc[question["a"], p] != table.loc[question["b"], p]]
        if any(p in DATA_SECTION_PARAMS for p in differ) == data:
            chosen.append(question)
    return chosen


def summary_table(study: Study, params: list[str], columns: list[tuple[str, str]]) -> list[list]:
    header = [Phrase("h_group"), *params, *[Phrase(label) for _, label in columns]]
    rows = [[g["group"], *[format_value(g[p]) for p in params],
             *[estimate_phrase(estimate(g, metric)) if f"{metric}_sd" in g else fmt(math.nan)
               for metric, _ in columns]]
            for _, g in study.summary.iterrows()]
    return [header, *rows]


def hyperparameter_section(study: Study, questions: list[dict]) -> Section:
    section = Section(1)
    params = [p for p in swept_params(study.summary) if p in TRAINING_PARAMS]
    for question in questions_on(questions, study.experiments, data=False):
        section.add(question_phrase(study, question))
    for param in params:
        section.add(*sweep_phrases(study, param, questions))
    if not params:
        section.add(Phrase("no_sweep"))
    section.add(stability_phrase(study.summary), fluency_phrase(study.summary), overfitting_phrase(study.summary))
    shown = params or [p for p in TRAINING_PARAMS if study.summary[p].nunique() > 1]
    section.table = summary_table(study, shown, [
        ("support_rate_after", "h_support"), ("valid_rate_after", "h_valid"), ("perplexity_after", "h_perplexity"),
        ("final_loss", "h_loss"), ("eval_rewards_accuracies", "h_held_out")])
    return section


def stability_phrase(summary: pd.DataFrame) -> Phrase | None:
    if "loss_spikes" not in summary:
        return None
    spiky = summary[summary["loss_spikes"] > 0]
    return Phrase("stable", {"stable": len(summary) - len(spiky), "groups": len(summary), "factor": fmt(SPIKE_FACTOR),
                             "window": SPIKE_WINDOW,
                             "spiky": Phrase("spiky", {"groups": ", ".join(spiky["group"])}) if len(spiky) else ""})


def fluency_phrase(summary: pd.DataFrame) -> Phrase | None:
    if "perplexity_after" not in summary or summary["perplexity_after"].isna().all():
        return None
    ordered = summary.dropna(subset=["perplexity_after"]).sort_values("perplexity_after", kind="stable")
    low, high = ordered.iloc[0], ordered.iloc[-1]
    return Phrase("fluency", {"before": fmt(summary["perplexity_before"].mean()),
                              "low": estimate_phrase(estimate(low, "perplexity_after")), "low_group": low["group"],
                              "high": estimate_phrase(estimate(high, "perplexity_after")),
                              "high_group": high["group"]})


def overfitting_phrase(summary: pd.DataFrame) -> Phrase | None:
    if "eval_rewards_accuracies" not in summary or summary["eval_rewards_accuracies"].isna().all():
        return None
    measured = summary.dropna(subset=["eval_rewards_accuracies"])
    gap = (measured["rewards_accuracies"] - measured["eval_rewards_accuracies"])
    first, widest = measured.iloc[0], measured.loc[gap.idxmax()]
    return Phrase("overfitting", {
        "group": first["group"], "train": estimate_phrase(estimate(first, "rewards_accuracies")),
        "held_out": estimate_phrase(estimate(first, "eval_rewards_accuracies")), "gap_group": widest["group"],
        "gap_train": estimate_phrase(estimate(widest, "rewards_accuracies")),
        "gap_held_out": estimate_phrase(estimate(widest, "eval_rewards_accuracies"))})


def strategy_phrases(study: Study) -> list[Phrase]:
    """Each strategy's group against the swap group with every other parameter equal."""
    summary = study.summary
    others = [p for p in (*DATA_SECTION_PARAMS, *TRAINING_PARAMS) if p != "strategy" and p in summary]
    phrases = []
    for _, group in summary[summary["strategy"] != HOMEWORK_STRATEGY].iterrows():
        same = summary[(summary["strategy"] == HOMEWORK_STRATEGY)
                       & (summary[others] == group[others]).all(axis=1)]
        if same.empty:
            continue
        a, b = same["group"].iloc[0], group["group"]
        change, prompts = study.compare(a, b)
        phrases.append(Phrase("strategy", {"strategy": group["strategy"], "a_group": a, "b_group": b,
                                           "a": estimate_phrase(study.after(a)), "b": estimate_phrase(study.after(b)),
                                           "verdict": verdict(change, prompts)}))
    return phrases


def data_section(study: Study, questions: list[dict]) -> Section:
    section = Section(3)
    for question in questions_on(questions, study.experiments, data=True):
        section.add(question_phrase(study, question))
    for param in [p for p in swept_params(study.summary) if p in ("data_size", "support_ratio")]:
        section.add(*sweep_phrases(study, param, questions))
    strategies = sorted(study.summary["strategy"].unique())
    if len(strategies) == 1:
        section.add(Phrase("one_strategy", {"strategy": strategies[0], "groups": len(study.summary)}))
    else:
        section.add(*strategy_phrases(study))
    shown = [p for p in DATA_SECTION_PARAMS if study.summary[p].nunique() > 1]
    section.table = summary_table(study, shown, [("support_rate_after", "h_support"), ("valid_rate_after", "h_valid")])
    return section


# ---- section 4: probes ---------------------------------------------------------------------


def robustness_section(study: Study, questions: list[dict]) -> Section:
    section = Section(4)
    categories = [c for c in prompt_categories(study.responses) if c != TEST_CATEGORY]
    if not categories:
        section.add(Phrase("probes_none"))
        return section
    rows = []
    for question in questions:
        if question.get("categories") is None:
            continue
        a, b = (study.group[question[s]] for s in ("a", "b"))
        chosen = question_categories(question, prompt_categories(study.responses))
        results = {c: study.compare(a, b, category=c) for c in chosen}
        established = [c for c, (change, n) in results.items() if change.is_effect and change.prompts >= n / 2]
        unmeasured = [c for c, (change, n) in results.items() if change.prompts == 0 or change.prompts < n / 2]
        section.add(Phrase("robustness", {
            "name": question["name"], "title": question_title(question), "categories": len(chosen),
            "established": len(established), "measured": len(chosen) - len(unmeasured),
            "which": Phrase("colon_list", {"items": ", ".join(established)}) if established else "",
            "unmeasured": len(unmeasured),
            "unmeasured_which": Phrase("colon_list", {"items": ", ".join(unmeasured)}) if unmeasured else ""}))
        for category, (change, prompts) in results.items():
            valid_pairs = f"{prompts} ({change.prompts})"
            measured = change.prompts > 0 and change.prompts >= prompts / 2
            interval = (f"{fmt(change.difference, signed=True)} [{fmt(change.low, signed=True)}, "
                        f"{fmt(change.high, signed=True)}]") if measured else fmt(math.nan)
            rows.append([question["name"], category, valid_pairs,
                         fmt(study.after_in(a, category)), fmt(study.after_in(b, category)), interval,
                         verdict_cell(change, prompts)])
    if rows:
        section.table = [["", Phrase("h_category"), Phrase("h_prompts"), "a", "b", Phrase("h_change"),
                          Phrase("h_verdict")], *rows]
    return section


# ---- the page ------------------------------------------------------------------------------


def introduction(study: Study, judges: list[dict]) -> list[Phrase]:
    runs_table = runs(study.experiments)
    part = study.answers
    base = part[part["experiment"] == part["experiment"].iloc[0]]  # the base model's answers, once
    answers = len(base) + len(part)
    invalid = int((~valid(base, "original")).sum() + (~valid(part, "aligned")).sum())
    seeds = study.summary["seed_count"]
    probes = int((study.responses["category"] != TEST_CATEGORY).sum() / max(study.responses["experiment"].nunique(), 1))
    seeds_phrase = (Phrase("seeds_one") if seeds.max() == 1 else
                    Phrase("seeds_range", {"low": int(seeds.min()), "high": int(seeds.max())}))
    reasons = reason_phrases(base, part)
    phrases = [
        Phrase("runs", {"runs": len(runs_table), "groups": len(study.summary), "seeds": seeds_phrase,
                        "test": count_test_prompts(study.responses), "probes": probes}),
        Phrase("invalid", {"invalid": invalid, "answers": answers,
                           "reasons": Joined(tuple(reasons)) if reasons else Phrase("no_reasons")}),
        Phrase("procedure", PROCEDURE_VALUES),
    ]
    for judge in judges:
        if "holdout" in judge:
            phrases.append(Phrase("judge", {"judge": judge["judge"], "accuracy": fmt(judge["holdout"]["accuracy"]),
                                            "examples": judge["holdout"]["examples"]}))
            break
    return phrases


def reason_phrases(base: pd.DataFrame, aligned: pd.DataFrame) -> list[Phrase]:
    """Why answers are invalid, counting the base model's answers once."""
    counts = {reason: int(base.get(f"original_{reason}", pd.Series(dtype=bool)).fillna(False).sum()
                          + aligned.get(f"aligned_{reason}", pd.Series(dtype=bool)).fillna(False).sum())
              for reason in INVALID_REASONS}
    return [Phrase(f"reason_{r}", {"n": n}) for r, n in counts.items() if n]


def findings(experiments: pd.DataFrame, responses: pd.DataFrame, questions: list[dict],
             judges: list[dict]) -> tuple[list[Phrase], list[Section]]:
    study = Study(experiments, responses)
    defects = Section(2)
    defects.sentences, defects.table, defects.quotes = qualitative(study, verdict)
    return introduction(study, judges), [
        hyperparameter_section(study, questions), defects, data_section(study, questions),
        robustness_section(study, questions),
    ]


def translated_path(path: str, language: str) -> str:
    """findings.md -> findings.zh-Hant.md."""
    target = Path(path)
    return str(target.with_name(target.stem + FILE_SUFFIX[language] + target.suffix))


def write_findings(experiments: str, responses: str, findings_md: str, findings_html: str,
                   questions: list[dict], judge_accuracy: list[str] | str = (), findings_zh: str | None = None) -> None:
    """Stage: results/findings.md, its Traditional Chinese twin and the HTML for the report."""
    paths = [judge_accuracy] if isinstance(judge_accuracy, str) else list(judge_accuracy)
    judges = [json.loads(Path(p).read_text()) for p in paths]
    intro, sections = findings(read_experiments(experiments), read_responses(responses), list(questions), judges)
    atomic.write_text(findings_md, markdown(intro, sections, "en"))
    for language in LANGUAGES[1:]:
        target = findings_zh if findings_zh and language == "zh-Hant" else translated_path(findings_md, language)
        atomic.write_text(target, markdown(intro, sections, language))
    atomic.write_text(findings_html, html_document(intro, sections, "en"))
