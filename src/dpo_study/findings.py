"""results/findings.md: the study's findings, every sentence written from a computed value.

Four themes (hyperparameter impact, qualitative answer changes, data-construction strategies,
robustness on probes), after the homework questions. Each claim carries its numbers, and a claim
the data cannot carry says why: one seed (no spread), a difference within seed noise, or a
difference of one prompt (a rate over n prompts moves in steps of 1/n).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dpo_study.experiments import DATA_PARAMS
from dpo_study.report import (
    TEST_CATEGORY, Estimate, category_metrics, count_test_prompts, difference_se, estimate, fmt, group_of,
    group_summary, prompt_categories, question_categories, question_table, question_title,
    read_experiments, read_responses, runs, side_estimate, stance_shift, sweep_lines, swept_params,
)

# A difference at least this many standard errors from zero is called distinguishable from seed noise.
NOISE_SE = 2.0
# Without seeds to measure noise, a change of a continuous metric below this share of the base
# model's value is called too small to read.
TINY_SHARE = 0.02
EXAMPLE_CHARS = 160


@dataclass
class Section:
    title: str
    paragraphs: list[list[str]] = field(default_factory=list)

    def add(self, *sentences: str) -> None:
        sentences = [s for s in sentences if s]
        if sentences:
            self.paragraphs.append(sentences)


# ---- how strong is the evidence ------------------------------------------------------------


def plural(count: float, word: str) -> str:
    if count == 1:
        return f"{fmt(count)} {word}"
    return f"{fmt(count)} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def evidence(difference: float, a: Estimate, b: Estimate, prompts: int | None = None) -> str:
    """One sentence on what a difference b − a can support, with the numbers behind the judgement."""
    if math.isnan(difference):
        return ""
    if prompts:
        step = 1 / prompts
        in_prompts = abs(difference) / step
        if in_prompts < 0.5:
            return (f"The difference of {fmt(difference, signed=True)} is less than half a prompt of {prompts}: "
                    "no difference to read.")
        if in_prompts <= 1.0 + 1e-9 and (a.n == 1 or b.n == 1):
            return (f"A difference of {fmt(abs(difference))} is one prompt of {prompts}, the smallest step a rate "
                    f"over {prompts} prompts can take: too small to read as an effect.")
    if a.n > 1 and b.n > 1:
        se = difference_se(a, b)
        if se == 0:
            return (f"Every seed gave the same value on each side ({a.n} and {b.n} seeds), so the difference of "
                    f"{fmt(difference, signed=True)} is not seed noise.")
        ratio = abs(difference) / se
        if ratio >= NOISE_SE:
            return (f"The difference is {ratio:.1f} times its standard error ({fmt(se)}, over {a.n} and {b.n} seeds): "
                    "it stands out from seed noise.")
        return (f"The difference is only {ratio:.1f} times its standard error ({fmt(se)}, over {a.n} and {b.n} "
                f"seeds): it cannot be told from seed noise.")
    seeds = min(a.n, b.n)
    return (f"With {plural(seeds, 'seed')} on {'each side' if a.n == b.n else 'one side'}, the seed-to-seed "
            f"spread is unknown: the difference of {fmt(difference, signed=True)} is one measurement, "
            "not an established effect.")


def size_evidence(difference: float, base: float, a: Estimate, b: Estimate, unit: str) -> str:
    """For a continuous metric: seed noise where there are seeds, else whether the change is tiny."""
    if a.n > 1 and b.n > 1:
        return evidence(difference, a, b)
    if base and abs(difference) < TINY_SHARE * abs(base):
        return (f"A difference of {fmt(abs(difference))} {unit} is {fmt(100 * abs(difference) / abs(base))}% of the "
                f"base model's {fmt(base)}: too small to read as an effect.")
    return ""


def range_evidence(values: list[Estimate], prompts: int | None) -> str:
    """What the spread of a sweep line (largest − smallest mean) can support."""
    low = min(values, key=lambda e: e.mean)
    high = max(values, key=lambda e: e.mean)
    return evidence(high.mean - low.mean, low, high, prompts)


# ---- sections -----------------------------------------------------------------------


def quote(text: str) -> str:
    text = " ".join(str(text).split())
    return "“" + (text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…") + "”"


def overview(experiments: pd.DataFrame, responses: pd.DataFrame, summary: pd.DataFrame,
             judges: list[dict]) -> Section:
    section = Section("Study")
    seeds = summary["seed_count"]
    probe_categories = [c for c in prompt_categories(responses) if c != TEST_CATEGORY]
    probes = int((responses["category"] != TEST_CATEGORY).sum() / max(responses["experiment"].nunique(), 1))
    section.add(
        f"The study has {plural(len(experiments), 'experiment')} in {plural(len(summary), 'seed group')} "
        f"(experiments that differ only in seed); "
        + (f"each group has {plural(int(seeds.max()), 'seed')}." if seeds.min() == seeds.max()
           else f"seeds per group range from {int(seeds.min())} to {int(seeds.max())}."),
        f"Each model answered {count_test_prompts(responses)} test prompts and {probes} probes in "
        f"{plural(len(probe_categories), 'probe category')}"
        + (f" ({', '.join(probe_categories)})." if probe_categories else "."),
        f"Before DPO the base model's support rate on the test prompts is {fmt(summary['support_rate_before'].mean())} "
        f"and its mean answer length {fmt(summary['mean_chars_before'].mean())} characters.",
    )
    for judge in judges:
        if "cv_accuracy" in judge:
            section.add(
                f"Stances come from the {judge.get('judge', 'stance')} judge, whose {judge.get('cv_folds', '')}-fold "
                f"cross-validated accuracy on the training data's own support and oppose answers is "
                f"{fmt(judge['cv_accuracy'])}.")
        if "holdout" in judge:
            section.add(
                f"On the labelled hold-out texts (support, oppose and neutral) the {judge['judge']} judge agrees "
                f"with the labels on {fmt(judge['holdout']['accuracy'])} of them.")
    if int(seeds.max()) == 1:
        section.add("Every group has 1 seed, so no finding below can be told apart from seed-to-seed noise; "
                    "list several seeds (a grid over seed) to measure it.")
    return section


def questions_section(questions: list[dict], experiments: pd.DataFrame, responses: pd.DataFrame) -> Section:
    section = Section("Homework questions")
    if not questions:
        section.add(f"The config lists {plural(0, 'question')}.")
    categories = prompt_categories(responses)
    for question in questions:
        table = question_table(question, experiments, responses)
        name = f"{question['name']} ({question_title(question)})"
        a, b = table["a_group"].iloc[0], table["b_group"].iloc[0]
        chosen = question_categories(question, categories)
        for category in chosen or [TEST_CATEGORY]:
            rows = table[(table["category"] == category) | (table["category"] == "")] if chosen is None \
                else table[table["category"] == category]
            section.add(*question_sentences(name, category, rows, a, b, with_training=chosen is None))
    return section


def question_sentences(name: str, category: str, rows: pd.DataFrame, a: str, b: str, with_training: bool) -> list[str]:
    by_metric = {r["metric"]: r for _, r in rows.iterrows()}
    sentences = []
    support = by_metric.get("support_rate")
    if support is not None:
        prompts = int(support["prompts"])
        where = f"the {prompts} test prompts" if category == TEST_CATEGORY else f"the {prompts} {category} probes"
        sa, sb = side_estimate(support, "a"), side_estimate(support, "b")
        sentences.append(
            f"{name}: after DPO the support rate on {where} is {sa} for {a} and {sb} for {b}, a difference of "
            f"{fmt(support['difference'], signed=True)} (base model: {fmt(support['base'])}).")
        sentences.append(evidence(support["difference"], sa, sb, prompts))
    length = by_metric.get("mean_chars", by_metric.get("chars"))
    if length is not None:
        la, lb = side_estimate(length, "a"), side_estimate(length, "b")
        sentences.append(
            f"Mean answer length there is {la} characters for {a} and {lb} for {b} "
            f"({fmt(length['difference'], signed=True)}; base model {fmt(length['base'])}).")
        sentences.append(size_evidence(length["difference"], length["base"], la, lb, "characters"))
    if with_training and "rewards_margins" in by_metric:
        margin = by_metric["rewards_margins"]
        sentences.append(
            f"The final reward margin is {side_estimate(margin, 'a')} nats for {a} and "
            f"{side_estimate(margin, 'b')} nats for {b}.")
    return sentences


def sweep_sentences(summary: pd.DataFrame, param: str, prompts: int) -> list[list[str]]:
    paragraphs = []
    for label, line in sweep_lines(summary, param):
        values = [estimate(r, "support_rate_after") for _, r in line.iterrows()]
        points = ", ".join(f"{fmt(v) if not isinstance(v, str) else v}: {e}" for v, e in zip(line[param], values))
        spread = max(e.mean for e in values) - min(e.mean for e in values)
        lengths = [estimate(r, "mean_chars_after") for _, r in line.iterrows()]
        paragraphs.append([
            f"Sweeping {param} ({label}), the support rate after DPO on the {prompts} test prompts is {points}; "
            f"largest minus smallest: {fmt(spread)}.",
            range_evidence(values, prompts),
            f"Mean answer length along the same values: {', '.join(str(e) for e in lengths)} characters.",
        ])
    return paragraphs


def largest_effects(summary: pd.DataFrame, params: list[str]) -> list[str]:
    spans = {}
    for param in params:
        for _, line in sweep_lines(summary, param):
            means = line["support_rate_after"]
            spans[param] = max(spans.get(param, 0.0), float(means.max() - means.min()))
    if len(spans) < 2:
        return []
    ranked = sorted(spans.items(), key=lambda item: -item[1])
    sentences = ["Ranked by how far they move the support rate (largest minus smallest along a sweep): "
                 + ", ".join(f"{p} {fmt(s)}" for p, s in ranked) + "."]
    if int(summary["seed_count"].max()) == 1:
        sentences.append(f"The ranking compares single-seed runs ({plural(len(summary), 'seed group')} of 1 seed "
                         "each), so neighbouring places may swap with another seed.")
    return sentences


def hyperparameter_section(summary: pd.DataFrame, prompts: int) -> Section:
    section = Section("1. Hyperparameter impact")
    params = [p for p in swept_params(summary) if p not in DATA_PARAMS]
    if not params:
        section.add(f"No training parameter is swept ({plural(0, 'sweep')} over num_epoch, beta, lora_r, "
                    "lora_alpha or learning_rate with the other settings fixed): the study holds no evidence here.")
    for param in params:
        for paragraph in sweep_sentences(summary, param, prompts):
            section.add(*paragraph)
    section.add(*largest_effects(summary, swept_params(summary)))
    return section


def qualitative_section(summary: pd.DataFrame, experiments: pd.DataFrame, responses: pd.DataFrame) -> Section:
    section = Section("2. Qualitative answer changes")
    groups = group_of(experiments)
    table = runs(experiments)
    test = responses[(responses["category"] == TEST_CATEGORY) & responses["experiment"].isin(table["experiment"])]
    per_run = category_metrics(test)
    extra = [m for m in dict.fromkeys(per_run["metric"])
             if m not in ("support_rate", "neutral_rate", "stance_changed", "chars", "support_score")]
    paired_metrics = [c.removesuffix("_after") for c in summary.columns
                      if c.endswith("_after") and f"{c}_sd" in summary.columns
                      and c.removesuffix("_after") not in ("support_rate", "mean_chars")]
    for _, group in summary.iterrows():
        name = group["group"]
        mine = per_run[per_run["experiment"].map(groups) == name]
        changed = Estimate.of(mine.loc[mine["metric"] == "stance_changed", "after"])
        prompts = int(mine["prompts"].iloc[0]) if len(mine) else 0
        before, after = estimate(group, "mean_chars_before"), estimate(group, "mean_chars_after")
        sentences = [
            f"{name}: {fmt(changed.mean * prompts)} of {prompts} test answers changed stance"
            + (f" (mean over {changed.n} seeds)" if changed.n > 1 else "")
            + f"; mean answer length went from {fmt(before.mean)} to {after} characters "
            f"({fmt(after.mean - before.mean, signed=True)})."
        ]
        for metric in paired_metrics:
            sentences.append(f"{metric} (experiments.csv): {fmt(group[metric + '_before'])} before DPO, "
                             f"{estimate(group, metric + '_after')} after.")
        for metric in extra:
            cells = mine[mine["metric"] == metric]
            sentences.append(f"{metric} (mean over the test answers): {fmt(cells['before'].mean())} before DPO, "
                             f"{Estimate.of(cells['after'])} after.")
        example = flipped_example(test[test["experiment"].map(groups) == name])
        if example:
            sentences.append(example)
        section.add(*sentences)
    return section


def flipped_example(answers: pd.DataFrame) -> str:
    """The first test answer whose stance changed, quoted before and after, with the judge's scores."""
    flipped = answers[answers["original_stance"] != answers["aligned_stance"]]
    if flipped.empty:
        return ""
    r = flipped.iloc[0]
    return (f"For example, on prompt {r['id']} the answer went from {r['original_stance']} "
            f"(support probability {fmt(r['original_support_score'])}) {quote(r['original_response'])} "
            f"to {r['aligned_stance']} ({fmt(r['aligned_support_score'])}) {quote(r['aligned_response'])}.")


def data_section(summary: pd.DataFrame, prompts: int) -> Section:
    section = Section("3. Data-construction strategies")
    strategies = sorted(summary["strategy"].unique())
    if len(strategies) == 1:
        section.add(f"All {plural(len(summary), 'seed group')} use the rejected-example strategy "
                    f"'{strategies[0]}': the study holds no evidence on other strategies.")
    params = [p for p in swept_params(summary) if p in DATA_PARAMS]
    for param in params:
        for paragraph in sweep_sentences(summary, param, prompts):
            section.add(*paragraph)
    if not params and len(strategies) > 1:
        section.add(f"The {len(strategies)} strategies ({', '.join(strategies)}) never differ with the other "
                    "settings fixed, so their effect cannot be separated from the other parameters.")
    return section


def robustness_section(experiments: pd.DataFrame, responses: pd.DataFrame) -> Section:
    section = Section("4. Robustness on probes")
    shifts = stance_shift(responses, experiments)
    test = shifts[shifts["category"] == TEST_CATEGORY].set_index("group")
    categories = [c for c in prompt_categories(responses) if c != TEST_CATEGORY]
    if not categories:
        section.add(f"The study has {plural(0, 'probe')}: nothing to say about robustness.")
    for category in categories:
        rows = shifts[shifts["category"] == category]
        prompts = int(rows["prompts"].iloc[0])
        low, high = rows.loc[rows["shift"].idxmin()], rows.loc[rows["shift"].idxmax()]
        sentences = [
            f"{category} ({plural(prompts, 'prompt')}): DPO shifts the support rate by "
            f"{fmt(low['shift'], signed=True)} ({low['group']}) to "
            f"{fmt(high['shift'], signed=True)} ({high['group']}); "
            f"on the test prompts the same experiments shift by {fmt(test.loc[low['group'], 'shift'], signed=True)} "
            f"and {fmt(test.loc[high['group'], 'shift'], signed=True)}.",
        ]
        follows = sum(
            1 for _, r in rows.iterrows()
            if r["group"] in test.index and test.loc[r["group"], "shift"] != 0
            and math.copysign(1, r["shift"]) == math.copysign(1, test.loc[r["group"], "shift"]) and r["shift"] != 0)
        moved = sum(1 for g in rows["group"] if g in test.index and test.loc[g, "shift"] != 0)
        if moved:
            sentences.append(f"In {follows} of the {moved} experiments whose test-prompt rate moved, this category "
                             "moved the same way.")
        sentences.append(f"With {plural(prompts, 'prompt')}, the rate of this category moves in steps of "
                         f"{fmt(1 / prompts)}, so a shift of one step is one answer.")
        section.add(*sentences)
    return section


# ---- writing ----------------------------------------------------------------------------


def markdown(sections: list[Section]) -> str:
    lines = ["# Findings", "",
             "Written by the pipeline from the study's tables; every number is computed, none typed in.", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [" ".join(paragraph), ""]
    return "\n".join(lines)


def html_document(sections: list[Section]) -> str:
    from dpo_study.report import html_page

    body = "".join(
        f"<h2>{html.escape(s.title)}</h2>" + "".join(f"<p>{html.escape(' '.join(p))}</p>" for p in s.paragraphs)
        for s in sections)
    return html_page("Findings", body)


def findings(experiments: pd.DataFrame, responses: pd.DataFrame, questions: list[dict],
             judges: list[dict]) -> list[Section]:
    summary = group_summary(experiments)
    prompts = count_test_prompts(responses)
    return [
        overview(experiments, responses, summary, judges),
        questions_section(questions, experiments, responses),
        hyperparameter_section(summary, prompts),
        qualitative_section(summary, experiments, responses),
        data_section(summary, prompts),
        robustness_section(experiments, responses),
    ]


def write_findings(experiments: str, responses: str, findings_md: str, findings_html: str,
                   questions: list[dict], judge_accuracy: list[str] | str = ()) -> None:
    """Stage: results/findings.md (and its HTML for the report) from the study's tables."""
    paths = [judge_accuracy] if isinstance(judge_accuracy, str) else list(judge_accuracy)
    judges = [json.loads(Path(p).read_text()) for p in paths]
    sections = findings(read_experiments(experiments), read_responses(responses), list(questions), judges)
    Path(findings_md).parent.mkdir(parents=True, exist_ok=True)
    Path(findings_md).write_text(markdown(sections), encoding="utf-8")
    Path(findings_html).parent.mkdir(parents=True, exist_ok=True)
    Path(findings_html).write_text(html_document(sections), encoding="utf-8")
