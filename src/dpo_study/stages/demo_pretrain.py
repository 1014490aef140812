"""Demo-only pretraining text for the embedded demo model (data/demo_pretrain.json).

The bundled training rows alone teach the demo model the topic, not the question: it replays a
memorised answer about AI Ghibli art in general. This text teaches it to answer the question it is
asked. Each subject question names a subject drawn afresh from a combinatorial pool (a modifier or
two and a noun: tens of thousands of subjects, too many to memorise), and its answer restates that
subject verbatim, so the cheapest way to predict the answer is to copy the subject from the question.
The pool leaves out every word of the test prompts and probes: the model has to take those from the
question. Traditional Chinese questions with a support and an oppose answer let it answer the Chinese
probes in Chinese. Never preference data: DPO trains on the study's training rows only.
"""

from __future__ import annotations

import random
import re

from dpo_study.config import reading
from dpo_study.config.errors import ConfigError

TEXT_LISTS = ("nouns", "modifiers", "questions", "support", "oppose", "zh_system")
TEMPLATES = ("questions", "support", "oppose")
ZH_FIELDS = ("prompt", "support", "oppose")
SLOT = "{thing}"


def load_pretrain(path: str | None) -> dict:
    """The pretraining text, checked; empty without a file. Errors name the file and the field: lists
    of non-empty texts, each template holding the subject slot ``{thing}`` exactly once (and no other
    braces), the Chinese rows with a prompt, a support and an oppose answer."""
    if not path:
        return {}
    text = reading.load(path, "demo pretraining file")
    if not isinstance(text, dict):
        raise ConfigError(f"{path}: must be a mapping with the fields {', '.join(TEXT_LISTS)}, zh")
    problems = []
    for key in TEXT_LISTS:
        values = text.get(key)
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            problems.append(f"field {key}: must be a non-empty list of texts")
        elif key in TEMPLATES:
            problems += [f"field {key}[{i}]: must hold {SLOT} exactly once and no other braces"
                         for i, v in enumerate(values) if v.count(SLOT) != 1 or re.search(r"[{}]", v.replace(SLOT, ""))]
        else:
            problems += [f"field {key}[{i}]: must not hold braces" for i, v in enumerate(values) if re.search(r"[{}]", v)]
    rows = text.get("zh")
    if not isinstance(rows, list) or not rows:
        problems.append("field zh: must be a non-empty list of {prompt, support, oppose}")
    else:
        problems += [f"field zh[{i}].{f}: must be a non-empty text" for i, r in enumerate(rows) for f in ZH_FIELDS
                     if not isinstance(r, dict) or not isinstance(r.get(f), str) or not r[f].strip()]
    if problems:
        raise ConfigError("; ".join(f"{path}: {p}" for p in problems))
    return text


# Made-up words for a share of the subjects: nothing to recall about them, so the only way to
# restate one is to copy it, token by token (real nouns alone, the model learnt to name a known
# noun near the question's subject instead of the subject itself).
ONSETS = ("b", "br", "d", "f", "fl", "g", "gr", "k", "l", "m", "n", "p", "pl", "r", "s", "st", "t", "tr", "v", "z")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ee")
CODAS = ("", "", "n", "r", "s", "l", "x", "nd", "ck", "m")
MADE_UP_RATE = 0.4


def made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(rng.randint(1, 3)))


def draw_subject(pretrain: dict, rng: random.Random) -> str:
    """A noun with none, one or two modifiers (two distinct ones); sometimes made-up words instead."""
    count = rng.choices((0, 1, 2), weights=(3, 5, 2))[0]
    words = [*rng.sample(pretrain["modifiers"], count), rng.choice(pretrain["nouns"])]
    if rng.random() < MADE_UP_RATE:
        words = [made_up_word(rng) if rng.random() < 0.7 else w for w in words]
    return " ".join(words)


def subject_example(pretrain: dict, stance: str, rng: random.Random) -> tuple[str, str]:
    """A fresh (question, answer) about a random subject; the answer restates the subject verbatim."""
    thing = draw_subject(pretrain, rng)
    question = rng.choice(pretrain["questions"]).replace(SLOT, thing)
    return question, rng.choice(pretrain[stance]).replace(SLOT, thing)


def chinese_example(pretrain: dict, stance: str, rng: random.Random) -> tuple[str, str, str]:
    """(system prompt, question, answer) of a Chinese row."""
    row = rng.choice(pretrain["zh"])
    return rng.choice(pretrain["zh_system"]), row["prompt"], row[stance]


def pretrain_texts(pretrain: dict) -> list[str]:
    """Text for the tokenizer: every word, template and Chinese row once."""
    if not pretrain:
        return []
    return [*(v for key in TEXT_LISTS for v in pretrain[key]), *(r[f] for r in pretrain["zh"] for f in ZH_FIELDS)]
