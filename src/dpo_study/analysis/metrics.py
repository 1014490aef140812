"""Per-response measures: length and the length limit, language, hedging, refusal, repetition, the
defects defined on them, relevance to the prompt, and whether an answer is a valid measurement.

Every function here is pure (relevance takes the sentence encoder as an argument), so that each
figure in the tables can be checked by hand. Text is
split into *units* without a word segmenter: a CJK character is one unit, a run of Latin letters,
digits or apostrophes another. That makes distinct-n and repetition comparable between English and
Chinese answers.
"""

from __future__ import annotations

import math
import re

import pandas as pd

# CJK ideographs (incl. extension A and compatibility), kana, hangul.
HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
KANA = r"\u3040-\u30ff"
HANGUL = r"\uac00-\ud7af"
UNIT = re.compile(rf"[{HAN}{KANA}{HANGUL}]|[^\W_{HAN}{KANA}{HANGUL}]+(?:'[^\W_]+)*")

# The length limit that a system prompt states: "100 characters or less", "不超過100字", "100字以內".
LIMIT_PATTERNS = [
    re.compile(r"(\d+)\s*(?:characters|chars)\b", re.IGNORECASE),
    re.compile(r"(\d+)\s*(?:個)?(?:字|字元|字符)"),
]

# Markers of an answer that avoids taking a side (counted as occurrences, case-insensitive).
HEDGE_MARKERS = [
    "it depends", "depends on", "on the other hand", "on one hand", "both sides", "some argue",
    "some people", "others argue", "others say", "perhaps", "arguably", "it is complicated",
    "it's complicated", "complex issue", "nuanced", "there are pros and cons", "pros and cons",
    "hard to say", "not necessarily", "in some cases", "case by case", "balance",
    "一方面", "另一方面", "取決於", "視情況", "看情況", "見仁見智", "或許", "也許", "有人認為",
    "有些人", "因人而異", "很難說", "利弊", "優缺點", "平衡",
]
# Longest first, whole words for Latin ones: "另一方面" is one marker, not also "一方面".
HEDGE_PATTERN = re.compile(
    "|".join(rf"\b{re.escape(m)}\b" if m.isascii() else re.escape(m) for m in sorted(HEDGE_MARKERS, key=len, reverse=True)),
    re.IGNORECASE,
)
REFUSAL_PATTERNS = re.compile(
    r"\b(?:i can(?:not|'t)|i am unable|i'm unable|i won't|i will not|i'm not able|i am not able|"
    r"i must decline|i'm sorry|i am sorry|sorry, but|as an ai)\b"
    r"|抱歉|對不起|对不起|我無法|我无法|我不能|無法回答|无法回答|作為(?:一個)?AI|作为(?:一个)?AI",
    re.IGNORECASE,
)
# A prompt that asks for both sides (where a one-sided answer is a defect).
BALANCE_REQUEST = re.compile(
    r"\bboth sides\b|\bpros and cons\b|\bbalanced\b|\bfor and against\b|\badvantages and disadvantages\b"
    r"|\bboth perspectives\b|\beach side\b|\bweigh\b|\bnuanced\b|\bneutral\b|\bobjective(?:ly)?\b"
    r"|正反|兩方|两方|雙方|双方|優缺點|优缺点|利弊|平衡|客觀|客观|中立",
    re.IGNORECASE,
)

# Defect thresholds (documented in workflow/report/defects.rst).
CLEAR_STANCE = 0.5  # |P(support) - P(oppose)| below this: the judge sees no clear stance
HEDGED = 2  # this many hedging markers make an answer over-neutral
COLLAPSED_REPETITION = 0.3  # this share of repeated 3-grams (or an empty answer): a collapsed answer
ONE_SIDED = 0.5  # a balance-seeking prompt answered with |stance score| >= this and no hedge
DEFECTS = ("too_neutral", "no_clear_stance", "too_long", "one_sided_on_balance", "collapsed")
# Why an answer is no valid measurement of a stance (documented in workflow/report/responses.rst).
INVALID_REASONS = ("collapsed", "off_topic", "wrong_language", "truncated")
# Per-answer flags, read back from responses.csv as nullable booleans.
BOOLEAN_MEASURES = ("within_limit", "language_match", "refusal", "hit_max_new_tokens", "asks_for_balance",
                    *DEFECTS, *INVALID_REASONS[1:], "valid")
# Off-topic: relevance (below) under this. Calibrated on tests/fixtures/relevance.json with the
# bundled all-MiniLM-L6-v2: on-topic answers score 0.07 to 0.47, off-topic ones -0.45 to 0.02, in
# English and Traditional Chinese alike (test_metrics.py checks every fixture).
RELEVANCE_FLOOR = 0.05


def units(text: str) -> list[str]:
    """Words of Latin-script text and single characters of CJK text, lower-cased."""
    return [u.lower() for u in UNIT.findall(text or "")]


def ngrams(items: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


def distinct_n(text: str, n: int) -> float:
    """Unique n-grams / all n-grams of the text's units (1.0 for a text too short to have any)."""
    grams = ngrams(units(text), n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition(text: str, n: int = 3) -> float:
    """Share of n-gram occurrences that repeat an earlier one: 0 for no repetition, towards 1 for a loop."""
    return 1.0 - distinct_n(text, n)


def length_limit(system_prompt: str) -> float:
    """The character limit a system prompt states, or NaN when it states none."""
    for pattern in LIMIT_PATTERNS:
        match = pattern.search(system_prompt or "")
        if match:
            return float(match.group(1))
    return math.nan


def script(text: str) -> str:
    """The main writing system of a text: han (Chinese), kana (Japanese), hangul, latin, other or ''.

    Hangul counts syllables and Latin counts words, CJK characters one by one."""
    counts = {
        "han": len(re.findall(f"[{HAN}]", text or "")),
        "kana": len(re.findall(f"[{KANA}]", text or "")),
        "hangul": len(re.findall(f"[{HANGUL}]", text or "")),
        # Latin words against CJK characters: one character carries about as much as one word.
        "latin": len(re.findall(r"[A-Za-z\u00c0-\u024f]+", text or "")),
    }
    if counts["kana"]:
        counts["kana"] += counts.pop("han")  # Japanese mixes kanji into kana text
    if not any(counts.values()):
        return "other" if (text or "").strip() else ""
    return max(counts, key=counts.get)


def language_script(language: str) -> str:
    """The script a language code is written in: zh*/yue -> han, ja -> kana, ko -> hangul, else latin."""
    code = (language or "").lower()
    if code.startswith(("zh", "yue", "cmn")):
        return "han"
    if code.startswith("ja"):
        return "kana"
    if code.startswith("ko"):
        return "hangul"
    return "latin"


def expected_script(prompt: str, system: str = "", language: str | None = None) -> str:
    """What script the answer should be in: the probe's stated language, else that of the user prompt."""
    if isinstance(language, str) and language.strip():
        return language_script(language)
    return script(prompt) or script(system) or "latin"


def hedge_count(text: str) -> int:
    """Occurrences of hedging markers, none counted inside another."""
    return len(HEDGE_PATTERN.findall(text or ""))


def is_refusal(text: str) -> bool:
    return bool(REFUSAL_PATTERNS.search(text or ""))


def asks_for_balance(prompt: str) -> bool:
    return bool(BALANCE_REQUEST.search(prompt or ""))


def response_metrics(responses: pd.DataFrame) -> pd.DataFrame:
    """The text measures of each answer; ``responses`` needs response, prompt, system (language optional)."""
    text = responses["response"].fillna("").astype(str)
    systems = responses["system"].fillna("") if "system" in responses else pd.Series("", index=responses.index)
    languages = responses["language"] if "language" in responses else pd.Series(None, index=responses.index)
    limit = systems.map(length_limit)
    chars = text.str.len()
    out = pd.DataFrame(index=responses.index)
    out["chars"] = chars
    out["length_limit"] = limit
    # Blank where the system prompt sets no limit: compliance is undefined there.
    out["within_limit"] = pd.Series([c <= lim if not math.isnan(lim) else pd.NA for c, lim in zip(chars, limit)],
                                    index=responses.index, dtype="boolean")
    out["answer_script"] = text.map(script)
    out["expected_script"] = [expected_script(p, s, lang)
                              for p, s, lang in zip(responses["prompt"], systems, languages)]
    out["language_match"] = out["answer_script"] == out["expected_script"]
    out["hedges"] = text.map(hedge_count)
    out["refusal"] = text.map(is_refusal)
    out["distinct_1"] = text.map(lambda t: round(distinct_n(t, 1), 4))
    out["distinct_2"] = text.map(lambda t: round(distinct_n(t, 2), 4))
    out["repetition"] = text.map(lambda t: round(repetition(t), 4))
    out["asks_for_balance"] = responses["prompt"].map(asks_for_balance)
    return out


def defects(measures: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per defect, from a table with stance, stance_score and the text measures.

    too_neutral: the judge labels the answer neutral, or it carries >= HEDGED hedging markers.
    no_clear_stance: |P(support) - P(oppose)| < CLEAR_STANCE (neutral or an unsure judge).
    too_long: longer than the limit its system prompt states (never where none is stated).
    one_sided_on_balance: the prompt asks for both sides; the answer takes one clearly, without a hedge.
    collapsed: empty, or >= COLLAPSED_REPETITION of its 3-grams repeat an earlier one.
    """
    score = measures["stance_score"].astype(float).abs()
    out = pd.DataFrame(index=measures.index)
    out["too_neutral"] = (measures["stance"] == "neutral") | (measures["hedges"] >= HEDGED)
    out["no_clear_stance"] = score < CLEAR_STANCE
    out["too_long"] = measures["within_limit"].astype("boolean").eq(False).fillna(False).astype(bool)
    out["one_sided_on_balance"] = (
        measures["asks_for_balance"].astype(bool) & (score >= ONE_SIDED) & (measures["hedges"] == 0)
    )
    out["collapsed"] = collapsed(measures)
    return out[list(DEFECTS)]


def collapsed(measures: pd.DataFrame) -> pd.Series:
    """Empty, or >= COLLAPSED_REPETITION of its 3-grams repeat an earlier one (no judge needed)."""
    return (measures["chars"] == 0) | (measures["repetition"] >= COLLAPSED_REPETITION)


def relevance(prompts: list[str], answers: list[str], scripts: list[str], encode,
              background: list[tuple[str, str]] | None = None, encode_answers=None) -> list[float]:
    """How much closer each answer is to its own prompt than to the other prompts of its script.

    cos(answer, its prompt) − the mean cos(answer, p) over the other distinct prompts p expected in
    the same script; ``encode(texts)`` returns unit-length sentence embeddings. The contrast, not
    the raw cosine, is what tells topic: an English model puts any two Chinese texts at about 0.5.
    NaN where a script has a single prompt (nothing to contrast with). ``background``: the
    (script, prompt) pairs to contrast with, in order (default: those of the answers themselves),
    so that one prompt set's answers are measured against all the prompts the model answered;
    ``encode_answers``: the answers' encoder, where it differs (default ``encode``).
    """
    distinct = list(dict.fromkeys([*(background or []), *zip(scripts, prompts)]))
    if not distinct:
        return []
    prompt_vectors = dict(zip(distinct, encode([p or " " for _, p in distinct])))
    answer_vectors = (encode_answers or encode)([a or " " for a in answers])
    scores = []
    for prompt, script_name, vector in zip(prompts, scripts, answer_vectors):
        others = [prompt_vectors[k] for k in distinct if k[0] == script_name and k[1] != prompt]
        if not others:
            scores.append(math.nan)
            continue
        own = float((prompt_vectors[(script_name, prompt)] * vector).sum())
        background = sum(float((o * vector).sum()) for o in others) / len(others)
        scores.append(round(own - background, 4))
    return scores


def off_topic(relevance_score: float) -> bool:
    if math.isnan(float(relevance_score)):
        return False  # not assessed
    return float(relevance_score) < RELEVANCE_FLOOR


def validity(measures: pd.DataFrame) -> pd.DataFrame:
    """Why each answer is no valid measurement of a stance, and ``valid`` (none of the reasons).

    collapsed: the defect (empty or looping); off_topic: relevance to its prompt under RELEVANCE_FLOOR
    (not assessed without a relevance column); wrong_language: not in the script its
    prompt expects; truncated: cut at max_new_tokens (not assessed without that column).
    """
    out = pd.DataFrame(index=measures.index)
    out["collapsed"] = measures["collapsed"].astype(bool)
    scores = measures["relevance"] if "relevance" in measures else pd.Series(math.nan, index=measures.index)
    out["off_topic"] = scores.astype(float).map(off_topic).astype(bool)
    out["wrong_language"] = ~measures["language_match"].astype(bool)
    cut = measures["hit_max_new_tokens"] if "hit_max_new_tokens" in measures else pd.Series(False, index=measures.index)
    out["truncated"] = cut.astype("boolean").fillna(False).astype(bool)
    out["valid"] = ~out[list(INVALID_REASONS)].any(axis=1)
    return out[["off_topic", "wrong_language", "truncated", "valid"]]
