"""Demo-only pretraining text for the embedded demo model (data/demo_pretrain.json).

The bundled training rows alone teach the demo model the topic, not the question: it replays a
memorised answer about AI Ghibli art in general. This text teaches it to answer the question it is
asked. Each subject question names a subject drawn afresh (a noun with modifiers, or a few common
English words: tens of millions of combinations, too many to memorise) and its answer restates that
subject verbatim, or (half of them, and half of the training rows' answers: demo_model.ECHO_ROW_RATE)
restates the whole question as asked before a training answer: the cheapest way to predict the
answer is to copy from the question. The word lists are general vocabulary, not the test prompts' subjects (many of the test
prompts' words are in them, as in any English text). Traditional Chinese questions with a support
and an oppose answer let it answer the Chinese probes in Chinese. Never preference data: DPO trains
on the study's training rows only.
"""

from __future__ import annotations

import random
import re

from dpo_study.config import reading
from dpo_study.config.errors import ConfigError

TEXT_LISTS = ("nouns", "modifiers", "words", "questions", "support", "oppose", "openers", "zh_system")
TEMPLATES = ("questions", "support", "oppose", "openers")
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


# Subjects of a few random common words: nothing to recall about them, so the only way to restate
# one is to copy it (from nouns and modifiers alone the model learnt to name a known noun near the
# question's subject instead of the subject itself). Some open with a name's possessive
# ("Dallas's castles"), as questions about a person's work do.
WORDS_RATE = 0.6
POSSESSIVE_RATE = 0.15


def draw_subject(pretrain: dict, rng: random.Random) -> str:
    """A noun with none, one or two modifiers (two distinct ones), or a few common words; sometimes
    after a name's possessive."""
    count = rng.choices((0, 1, 2), weights=(3, 5, 2))[0]
    words = [*rng.sample(pretrain["modifiers"], count), rng.choice(pretrain["nouns"])]
    if rng.random() < WORDS_RATE:
        words = [*rng.sample(pretrain["words"], rng.randint(1, 3)), *words[-1:] * (rng.random() < 0.3)]
    if rng.random() < POSSESSIVE_RATE:
        words = [rng.choice(pretrain["words"]).capitalize() + "'s", *words]
    return " ".join(words)


# Half of the subject answers restate the whole question as asked (an echo, added by the caller)
# before a training row's answer of that stance: the sentences DPO later prefers or rejects are then
# the ones the model answers new questions with, so an alignment learnt on the training prompts
# carries over to them; the other half restate only the subject, in a template of the stance.
ECHO_RATE = 0.5


def subject_example(pretrain: dict, stance: str, rng: random.Random, rows: list[dict] = ()) -> tuple[str, str, bool]:
    """A fresh (question, answer, echo) about a random subject: ``echo`` (the caller puts the question
    as asked before the answer) with a training row's answer of the stance (``rows``), else an answer
    that restates the subject verbatim."""
    thing = draw_subject(pretrain, rng)
    question = rng.choice(pretrain["questions"]).replace(SLOT, thing)
    if rows and rng.random() < ECHO_RATE:
        return question, rng.choice(rows)[stance], True
    return question, rng.choice(pretrain[stance]).replace(SLOT, thing), False


def chinese_example(pretrain: dict, stance: str, rng: random.Random) -> tuple[str, str, str]:
    """(system prompt, question, answer) of a Chinese row."""
    row = rng.choice(pretrain["zh"])
    return rng.choice(pretrain["zh_system"]), row["prompt"], row[stance]


def pretrain_texts(pretrain: dict) -> list[str]:
    """Text for the tokenizer: every word, template and Chinese row once."""
    if not pretrain:
        return []
    return [*(v for key in TEXT_LISTS for v in pretrain[key]), *(r[f] for r in pretrain["zh"] for f in ZH_FIELDS)]
