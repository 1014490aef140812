"""Section 2 of the findings: answer defects before and after DPO, and cases quoted by a stated rule."""

from __future__ import annotations

import pandas as pd

from dpo_study.analysis.comparisons import count_test_prompts, valid, with_group

from dpo_study.config.questions import TEST_CATEGORY
from dpo_study.analysis.labels import fmt, plural
from dpo_study.analysis.metrics import DEFECTS

EXAMPLE_CHARS = 160


def defect_counts(part: pd.DataFrame, side: str) -> dict[str, float]:
    """Per defect: answers with it, mean over the runs in ``part``."""
    return {d: float(part.groupby("experiment")[f"{side}_{d}"].apply(lambda v: v.fillna(False).sum()).mean())
            for d in DEFECTS if f"{side}_{d}" in part}


def qualitative(experiments: pd.DataFrame, responses: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str]]:
    """The section's sentences, its table (header row first) and its quoted cases."""
    sentences = []
    part = with_group(responses, experiments)
    test = part[part["category"] == TEST_CATEGORY]
    prompts = count_test_prompts(responses)
    base = defect_counts(test[test["experiment"] == test["experiment"].iloc[0]], "original")
    groups = list(dict.fromkeys(test["group"]))
    after = {g: defect_counts(test[test["group"] == g], "aligned") for g in groups}
    new = {d: int((test[f"aligned_{d}"].fillna(False) & ~test[f"original_{d}"].fillna(False)).sum()) for d in base}
    fixed = {d: int((test[f"original_{d}"].fillna(False) & ~test[f"aligned_{d}"].fillna(False)).sum()) for d in base}
    answers = len(test)
    sentences.append(f"Over the {prompts} test prompts of {plural(len(groups), 'group')} ({answers} answer pairs), DPO "
                f"gave {sum(new.values())} answers a defect their original lacked and removed {sum(fixed.values())}: "
                + ", ".join(f"{d.replace('_', ' ')} {new[d]} new / {fixed[d]} fixed" for d in base) + ".")
    worst = max(base, key=lambda d: new[d] - fixed[d]) if base else None
    if worst and new[worst] > fixed[worst]:
        sentences.append(f"The defect DPO adds most is {worst.replace('_', ' ')} (net {new[worst] - fixed[worst]:+d}).")
    table = [["defect", f"base model (of {prompts})", *[f"{g} (of {prompts})" for g in groups]],
                     *[[d.replace("_", " "), fmt(base[d]), *[fmt(after[g][d]) for g in groups]] for d in base]]
    return sentences, table, quotes(test if len(test) else part)


def quote(text: str) -> str:
    text = " ".join(str(text).split())
    return "“" + (text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…") + "”"


def case(label: str, row) -> str:
    return (f"{label} ({row['experiment']}, prompt {row['id']}, {quote(row['prompt'])}): before DPO "
            f"{row['original_stance']} {quote(row['original_response'])}; after DPO {row['aligned_stance']} "
            f"{quote(row['aligned_response'])}.")


def quotes(answers: pd.DataFrame) -> list[str]:
    """Three cases by a stated rule: the largest stance change among valid pairs, the first answer that
    gained a defect, the first original answer whose defect DPO removed (in table order)."""
    out = ["Cases, chosen by rule (the largest stance-score change among valid answer pairs; the first answer "
           "with a defect its original lacked; the first original whose defect DPO removed):"]
    both = answers[valid(answers, "original") & valid(answers, "aligned")]
    if len(both) and "original_stance_score" in both:
        change = (both["aligned_stance_score"] - both["original_stance_score"]).abs()
        row = both.loc[change.idxmax()]
        out.append(case(f"Largest stance change ({fmt(change.max())} in stance score)", row))
    flags = [d for d in DEFECTS if f"original_{d}" in answers]
    for label, gained in (("New defect", True), ("Fixed defect", False)):
        for defect in flags:
            before, after = answers[f"original_{defect}"].fillna(False), answers[f"aligned_{defect}"].fillna(False)
            hits = answers[after & ~before] if gained else answers[before & ~after]
            if len(hits):
                out.append(case(f"{label}: {defect.replace('_', ' ')}", hits.iloc[0]))
                break
    return out if len(out) > 1 else []
