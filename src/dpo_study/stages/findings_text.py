"""The words of results/findings.md in English and in the portfolio's Traditional Chinese, and how
the page is written in either.

Every sentence of the findings is one of the templates below, filled with the same values in both
languages: numbers, experiment names and parameter names come from the tables and are never
translated, so the two files carry the same figures (tests/stages/test_report.py checks that).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from dpo_study.stages.pages import html_page
from dpo_study.analysis.statistics import BOOTSTRAP_RESAMPLES, CONFIDENCE, MIN_PROMPTS, percent

LANGUAGES = ("en", "zh-Hant")
FILE_SUFFIX = {"en": "", "zh-Hant": ".zh-Hant"}

TEXT = {
    "en": {
        "title": "Findings",
        "generated": "Written by the pipeline from the study's tables; every number is computed, none typed in.",
        # The portfolio's four headings, and the label of the blank each section fills.
        "section1": "1. Systematic hyperparameter tuning and impact analysis",
        "section2": "2. Qualitative analysis of response changes and case studies",
        "section3": "3. Exploring different preference data construction strategies",
        "section4": "4. Preliminary boundary testing and robustness checks",
        "label1": "Findings", "label2": "Insights", "label3": "Preliminary observations", "label4": "Findings",
        "runs": "The study trained {runs} runs in {groups} seed groups ({seeds}); each model answered {test} test "
                "prompts and {probes} probes.",
        "seeds_one": "1 seed each",
        "seeds_range": "{low} to {high} seeds per group",
        "invalid": "{invalid} of {answers} answers (the base model's and every run's) are no valid measurement of a "
                   "stance ({reasons}) and are left out of every stance rate.",
        "no_reasons": "none",
        "reason_collapsed": "collapsed {n}", "reason_off_topic": "off-topic {n}",
        "reason_wrong_language": "in the wrong language {n}", "reason_truncated": "cut at max_new_tokens {n}",
        "judge": "Stances come from the {judge} judge, which agrees with {accuracy} of {examples} labelled hold-out "
                 "texts.",
        "procedure": "Method: each comparison below has exactly one verdict, from one procedure fixed before the "
                     "study: a two-way bootstrap ({resamples} resamples, seeded) that draws the prompts and each "
                     "side's seeds with replacement; the change is the mean over prompts of the per-prompt "
                     "difference of the seed means, and it is established when its {confidence} percentile "
                     "interval excludes 0 over at least {min_prompts} prompts with a valid answer on both sides.",
        # verdicts
        "ci": "{confidence} CI {low} to {high}",
        "established": "{difference} ({ci}, {prompts} prompts): established",
        "not_established": "{difference} ({ci}, {prompts} prompts): not established",
        "unchanged": "{difference} ({ci}, {prompts} prompts): not established (no answer changed)",
        "would_need": "at the observed spread, about {prompts} prompts and {seeds} seeds a side would establish it",
        "would_need_one": "at the observed spread, about {prompts} prompts would establish it",
        "no_measurement": "no valid measurement ({valid} of {prompts} prompts have a valid answer on both sides)",
        "estimate_one": "{mean}", "estimate_seeds": "{mean} ± {sd} (n={n})",
        # section 1 and 3
        "question": "{name} ({title}), support rate after DPO on the {prompts} test prompts: {a_group} {a} → "
                    "{b_group} {b}; b − a = {verdict}.",
        "sweep": "Sweep of {param} ({setting}), support rate after DPO: {points}; {b_group} − {a_group} = {verdict}.",
        "sweep_point": "{param}={value}: {estimate}",
        "other_settings_fixed": "other settings fixed",
        "strategy": "Strategy {strategy} against swap ({b_group} vs {a_group}), support rate after DPO: {a} → {b}; "
                    "b − a = {verdict}.",
        "no_sweep": "No training hyperparameter (num_epoch, beta, lora_r, lora_alpha, learning_rate) is swept with "
                    "the others fixed: the study holds no evidence on them.",
        "one_strategy": "All {groups} groups use the rejected-example strategy {strategy}: the study holds no "
                        "evidence on the other strategies.",
        "stable": "Training was stable in {stable} of {groups} groups (no step whose loss jumped to over {factor} "
                  "times the mean of the {window} steps before it){spiky}.",
        "spiky": "; loss spikes in {groups}",
        "fluency": "Fluency: the median perplexity of the test answers under the base model is {before} before DPO; "
                   "after DPO it ranges from {low} ({low_group}) to {high} ({high_group}).",
        "overfitting": "Over-fitting: reward accuracy on the training pairs vs on held-out pairs (rows not trained "
                       "on) is {train} vs {held_out} in {group}; the largest gap is in {gap_group} ({gap_train} vs "
                       "{gap_held_out}).",
        # section 2
        "defects_none": "No answer defect occurred in the {answers} test answers of the base model and of every "
                        "run.",
        "defect": "{defect}: the base model {base} of the test answers, after DPO most in {group} ({after}); "
                  "{group} − base model = {verdict}.",
        "defect_names": {"too_neutral": "too neutral", "no_clear_stance": "no clear stance", "too_long": "too long",
                         "one_sided_on_balance": "one-sided where balance was asked", "collapsed": "collapsed"},
        "cases_rule": "Cases, chosen by rule (the largest stance-score change among valid answer pairs; the first "
                      "answer with a defect its original lacked; the first original whose defect DPO removed):",
        "case": "{label} ({experiment}, prompt {id}, {prompt}): before DPO {before_stance} {before}; after DPO "
                "{after_stance} {after}.",
        "case_largest": "Largest stance change ({change} in stance score)",
        "case_new": "New defect: {defect}", "case_fixed": "Fixed defect: {defect}",
        "stances": {"support": "support", "oppose": "oppose", "neutral": "neutral"},
        # section 4
        "probes_none": "The study has no probes: nothing to say about robustness.",
        "robustness": "{name} ({title}), support rate after DPO per probe category, b − a: established in "
                      "{established} of {measured} measured categories{which}; no valid measurement in {unmeasured} "
                      "of {categories}{unmeasured_which}.",
        # table headers
        "h_group": "group", "h_base": "base model", "h_defect": "defect",
        "h_support": "support rate after", "h_valid": "valid answers after", "h_perplexity": "perplexity after",
        "h_loss": "final loss", "h_held_out": "held-out reward accuracy",
        "h_category": "category", "h_prompts": "prompts (valid pairs)", "h_change": "b − a [95% CI]",
        "h_verdict": "verdict",
        "v_established": "established", "v_not": "not established", "v_none": "no valid measurement",
        "v_need": "not established (about {prompts} prompts, {seeds} seeds a side)",
        "v_need_one": "not established (about {prompts} prompts)",
        "colon_list": ": {items}",
        "list_sep": "; ", "colon": ": ", "space": " ",
    },
    "zh-Hant": {
        "title": "研究發現",
        "generated": "本頁由流程依研究表格自動寫成；每個數字皆為計算所得，無任何手動輸入。",
        "section1": "1. 系統性超參數調校與影響分析",
        "section2": "2. 模型回答質性分析與案例研究",
        "section3": "3. 探索不同偏好數據建構策略",
        "section4": "4. 對齊後模型的邊界測試與魯棒性初探",
        "label1": "發現", "label2": "洞見", "label3": "初步觀察", "label4": "發現",
        "runs": "本研究共訓練 {runs} 個模型，分為 {groups} 個種子組（{seeds}）；每個模型回答 {test} 個測試提示與 "
                "{probes} 個探測提示。",
        "seeds_one": "每組 1 個種子",
        "seeds_range": "每組 {low} 至 {high} 個種子",
        "invalid": "在 {answers} 個回答（基礎模型與每次訓練）中，有 {invalid} 個不是有效的立場量測（{reasons}），"
                   "不計入任何立場比率。",
        "no_reasons": "無",
        "reason_collapsed": "崩壞 {n}", "reason_off_topic": "離題 {n}",
        "reason_wrong_language": "語言不符 {n}", "reason_truncated": "於 max_new_tokens 截斷 {n}",
        "judge": "立場由 {judge} 判別器判定；它在 {examples} 筆人工標註的保留文本上的一致率為 {accuracy}。",
        "procedure": "方法：以下每個比較只有一個判定，來自研究前即固定的同一程序：雙向自助法（{resamples} 次重抽樣，"
                     "固定亂數種子），對提示與每一側的種子做有放回抽樣；變化量為各提示上種子平均之差的提示平均，"
                     "當其 {confidence} 百分位信賴區間不含 0，且至少有 {min_prompts} 個提示兩側皆有有效回答時，"
                     "判定為效果成立。",
        "ci": "{confidence} 信賴區間 {low} 至 {high}",
        "established": "{difference}（{ci}，{prompts} 個提示）：效果成立",
        "not_established": "{difference}（{ci}，{prompts} 個提示）：未成立",
        "unchanged": "{difference}（{ci}，{prompts} 個提示）：未成立（沒有任何回答改變）",
        "would_need": "依觀察到的離散程度，約需 {prompts} 個提示、每側 {seeds} 個種子才能確立",
        "would_need_one": "依觀察到的離散程度，約需 {prompts} 個提示才能確立",
        "no_measurement": "無有效量測（{prompts} 個提示中只有 {valid} 個兩側皆有有效回答）",
        "estimate_one": "{mean}", "estimate_seeds": "{mean} ± {sd}（n={n}）",
        "question": "{name}（{title}），DPO 後在 {prompts} 個測試提示上的支持率：{a_group} {a} → {b_group} {b}；"
                    "b − a = {verdict}。",
        "sweep": "{param} 掃描（{setting}），DPO 後支持率：{points}；{b_group} − {a_group} = {verdict}。",
        "sweep_point": "{param}={value}：{estimate}",
        "other_settings_fixed": "其他設定固定",
        "strategy": "策略 {strategy} 對比 swap（{b_group} 對 {a_group}），DPO 後支持率：{a} → {b}；b − a = {verdict}。",
        "no_sweep": "沒有在其他參數固定下掃描任何訓練超參數（num_epoch、beta、lora_r、lora_alpha、learning_rate）："
                    "本研究對它們沒有證據。",
        "one_strategy": "全部 {groups} 個組都使用 rejected 範例策略 {strategy}：本研究對其他策略沒有證據。",
        "stable": "{groups} 個組中有 {stable} 個訓練穩定（沒有任何一步的損失超過前 {window} 步平均的 {factor} 倍）"
                  "{spiky}。",
        "spiky": "；損失突增：{groups}",
        "fluency": "流暢度：測試回答在基礎模型下的困惑度中位數，DPO 前為 {before}；DPO 後介於 {low}（{low_group}）"
                   "與 {high}（{high_group}）之間。",
        "overfitting": "過擬合：訓練偏好對與保留偏好對（未訓練的資料列）上的獎勵準確率，在 {group} 為 {train} 對 "
                       "{held_out}；差距最大的是 {gap_group}（{gap_train} 對 {gap_held_out}）。",
        "defects_none": "基礎模型與每次訓練的 {answers} 個測試回答中，沒有出現任何回答缺陷。",
        "defect": "{defect}：基礎模型的測試回答中佔 {base}，DPO 後以 {group} 最多（{after}）；"
                  "{group} − 基礎模型 = {verdict}。",
        "defect_names": {"too_neutral": "過於中立", "no_clear_stance": "缺乏明確立場", "too_long": "回答過長",
                         "one_sided_on_balance": "要求平衡卻只談一方", "collapsed": "回答崩壞"},
        "cases_rule": "案例依規則挑選（有效回答對中立場分數變化最大者；第一個出現原回答沒有之缺陷的回答；"
                      "第一個被 DPO 消除缺陷的原回答）：",
        "case": "{label}（{experiment}，提示 {id}，{prompt}）：DPO 前 {before_stance} {before}；DPO 後 "
                "{after_stance} {after}。",
        "case_largest": "立場變化最大（立場分數變化 {change}）",
        "case_new": "新缺陷：{defect}", "case_fixed": "已修正的缺陷：{defect}",
        "stances": {"support": "支持", "oppose": "反對", "neutral": "中立"},
        "probes_none": "本研究沒有探測提示：無法評估魯棒性。",
        "robustness": "{name}（{title}），各探測類別 DPO 後支持率的 b − a：在 {measured} 個有量測的類別中，"
                      "{established} 個效果成立{which}；{categories} 個類別中有 {unmeasured} 個無有效量測"
                      "{unmeasured_which}。",
        "h_group": "組", "h_base": "基礎模型", "h_defect": "缺陷",
        "h_support": "DPO 後支持率", "h_valid": "DPO 後有效回答", "h_perplexity": "DPO 後困惑度",
        "h_loss": "最終損失", "h_held_out": "保留對獎勵準確率",
        "h_category": "類別", "h_prompts": "提示（有效對）", "h_change": "b − a [95% 信賴區間]",
        "h_verdict": "判定",
        "v_established": "效果成立", "v_not": "未成立", "v_none": "無有效量測",
        "v_need": "未成立（約需 {prompts} 個提示、每側 {seeds} 個種子）",
        "v_need_one": "未成立（約需 {prompts} 個提示）",
        "colon_list": "：{items}",
        "list_sep": "；", "colon": "：", "space": "",
    },
}

# Values shared by both languages' method sentence.
PROCEDURE_VALUES = {"resamples": f"{BOOTSTRAP_RESAMPLES:,}", "confidence": percent(CONFIDENCE),
                    "min_prompts": MIN_PROMPTS}


def say(language: str, key: str, **values) -> str:
    """The sentence ``key`` of ``language`` with ``values`` filled in."""
    return TEXT[language][key].format(**values)


# ---- phrases: one structure, rendered in each language -------------------------------------


@dataclass(frozen=True)
class Phrase:
    """A sentence or fragment: a findings_text key and its values (text, numbers as text, phrases)."""

    key: str
    values: dict = field(default_factory=dict)

    def render(self, language: str) -> str:
        return say(language, self.key, **{k: render(v, language) for k, v in self.values.items()})


@dataclass(frozen=True)
class Joined:
    """Phrases or texts joined by the language's list separator."""

    items: tuple

    def render(self, language: str) -> str:
        return TEXT[language]["list_sep"].join(render(i, language) for i in self.items)


@dataclass(frozen=True)
class Word:
    """One entry of a findings_text word table (defect names, stances)."""

    table: str
    key: str

    def render(self, language: str) -> str:
        return TEXT[language][self.table].get(self.key, self.key)


def render(value, language: str) -> str:
    return value.render(language) if isinstance(value, (Phrase, Joined, Word)) else str(value)


@dataclass
class Section:
    number: int
    sentences: list = field(default_factory=list)
    table: list[list] = field(default_factory=list)  # header row first; cells are text or phrases
    quotes: list = field(default_factory=list)  # the rule, then the cases

    def add(self, *sentences) -> None:
        self.sentences += [s for s in sentences if s]


# ---- the page in one language -------------------------------------------------------------


def markdown_table(rows: list[list], language: str) -> list[str]:
    if not rows:
        return []
    cell = lambda c: render(c, language).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1:]] + [""]


def joined(phrases, language: str) -> str:
    return TEXT[language]["space"].join(render(p, language) for p in phrases)


def markdown(intro: list, sections: list[Section], language: str = "en") -> str:
    words = TEXT[language]
    lines = [f"# {words['title']}", "", words["generated"], "", joined(intro, language), ""]
    for section in sections:
        label = words[f"label{section.number}"]
        lines += [f"## {words[f'section{section.number}']}", "",
                  f"**{label}**{words['colon']}{joined(section.sentences, language)}", ""]
        lines += markdown_table(section.table, language)
        if section.quotes:
            lines += [render(section.quotes[0], language), "",
                      *[f"- {render(q, language)}" for q in section.quotes[1:]], ""]
    return "\n".join(lines)


def html_document(intro: list, sections: list[Section], language: str = "en") -> str:
    words = TEXT[language]
    parts = [f"<p>{html.escape(joined(intro, language))}</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(words[f'section{s.number}'])}</h2>"
                     f"<p><b>{html.escape(words[f'label{s.number}'])}</b>{words['colon']}"
                     f"{html.escape(joined(s.sentences, language))}</p>")
        if s.table:
            head = "".join(f"<th>{html.escape(render(c, language))}</th>" for c in s.table[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(render(c, language))}</td>" for c in row) + "</tr>"
                           for row in s.table[1:])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if s.quotes:
            parts.append(f"<p>{html.escape(render(s.quotes[0], language))}</p><ul>"
                         + "".join(f"<li>{html.escape(render(q, language))}</li>" for q in s.quotes[1:]) + "</ul>")
    return html_page(words["title"], "".join(parts))
