"""Section 2 of the findings: answer defects before and after DPO, and cases quoted by a stated rule.

Only defects that occur are shown. Each gets one verdict: the group whose share of answers with the
defect moved furthest from the base model's, against the base model, over the test prompts with the
seeds nested (the findings' one procedure, statistics.PROCEDURE).
"""

from __future__ import annotations

import pandas as pd

from dpo_study.analysis.comparisons import group_change, valid

from dpo_study.config.questions import TEST_CATEGORY
from dpo_study.stages.findings_text import Phrase, Word
from dpo_study.analysis.labels import fmt
from dpo_study.analysis.metrics import DEFECTS

EXAMPLE_CHARS = 160


def defect_rate(cell: pd.DataFrame, side: str, defect: str) -> float:
    """The share of answers with the defect (all answers: a collapsed answer is one too)."""
    column = f"{side}_{defect}"
    return float(cell[column].fillna(False).astype(bool).mean()) if len(cell) else float("nan")


def qualitative(study, verdict) -> tuple[list, list[list], list]:
    """The section's sentences, its table (header row first) and its quoted cases, as phrases of
    dpo_study.stages.findings_text (``verdict``: how a comparison is worded)."""
    test = study.answers[study.answers["category"] == TEST_CATEGORY]
    if test.empty:
        return [], [], []
    base = test[test["experiment"] == test["experiment"].iloc[0]]
    groups = list(dict.fromkeys(test["group"]))
    present = [d for d in DEFECTS if f"original_{d}" in test and f"aligned_{d}" in test]
    rates = {d: {"base": defect_rate(base, "original", d),
                 **{g: defect_rate(test[test["group"] == g], "aligned", d) for g in groups}} for d in present}
    occurring = [d for d in present if max(rates[d].values()) > 0]
    prompts = int(base["id"].nunique())
    if not occurring:
        return [Phrase("defects_none", {"answers": len(base) + len(test)})], [], quotes(test)
    sentences = []
    for defect in occurring:
        group = max(groups, key=lambda g: abs(rates[defect][g] - rates[defect]["base"]))
        cell = test[test["group"] == group]
        change = group_change(cell, cell, defect, a_side="original", spread=True)
        sentences.append(Phrase("defect", {"defect": Word("defect_names", defect), "base": fmt(rates[defect]["base"]),
                                           "group": group, "after": fmt(rates[defect][group]),
                                           "verdict": verdict(change, prompts)}))
    header = [Phrase("h_group"), *[Word("defect_names", d) for d in occurring]]
    rows = [[Phrase("h_base"), *[fmt(rates[d]["base"]) for d in occurring]]]
    rows += [[g, *[fmt(rates[d][g]) for d in occurring]] for g in groups]
    return sentences, [header, *rows], quotes(test)


def quote(text: str) -> str:
    text = " ".join(str(text).split())
    return "“" + (text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…") + "”"


def case(label, row):
    return Phrase("case", {"label": label, "experiment": row["experiment"], "id": row["id"],
                           "prompt": quote(row["prompt"]), "before_stance": Word("stances", row["original_stance"]),
                           "before": quote(row["original_response"]),
                           "after_stance": Word("stances", row["aligned_stance"]),
                           "after": quote(row["aligned_response"])})


def quotes(answers: pd.DataFrame) -> list:
    """Three cases by a stated rule: the largest stance change among valid pairs, the first answer that
    gained a defect, the first original answer whose defect DPO removed (in table order)."""
    out = [Phrase("cases_rule")]
    both = answers[valid(answers, "original") & valid(answers, "aligned")]
    if len(both) and "original_stance_score" in both:
        change = (both["aligned_stance_score"] - both["original_stance_score"]).abs()
        out.append(case(Phrase("case_largest", {"change": fmt(change.max())}), both.loc[change.idxmax()]))
    flags = [d for d in DEFECTS if f"original_{d}" in answers]
    for key, gained in (("case_new", True), ("case_fixed", False)):
        for defect in flags:
            before, after = answers[f"original_{defect}"].fillna(False), answers[f"aligned_{defect}"].fillna(False)
            hits = answers[after & ~before] if gained else answers[before & ~after]
            if len(hits):
                out.append(case(Phrase(key, {"defect": Word("defect_names", defect)}), hits.iloc[0]))
                break
    return out if len(out) > 1 else []
