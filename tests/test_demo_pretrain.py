"""The demo model's pretraining text (data/demo_pretrain.json): answers tied to their question's subject."""

import json
import random

import pytest

from conftest import REPO
from dpo_study.demo_model import load_pretrain, subject_example
from dpo_study.validation import ConfigError

PRETRAIN = REPO / "data/demo_pretrain.json"


def test_every_subject_answer_restates_the_subject_of_its_question():
    pretrain = load_pretrain(str(PRETRAIN))
    rng = random.Random(0)
    for _ in range(200):
        stance = rng.choice(["support", "oppose"])
        question, answer = subject_example(pretrain, stance, rng)
        subject = next(t for t in pretrain["things"] if t in question)
        assert subject in answer, (question, answer)


def test_the_stance_is_not_the_first_word():
    """Support and oppose templates open alike, so DPO cannot learn the stance from the first token."""
    pretrain = load_pretrain(str(PRETRAIN))
    first = lambda texts: sorted(t.split()[0] for t in texts)  # noqa: E731
    assert first(pretrain["support"]) == first(pretrain["oppose"])


def test_the_test_prompts_subjects_are_left_for_the_model_to_copy():
    pretrain = load_pretrain(str(PRETRAIN))
    prompts = [row["prompt"].lower() for row in json.loads((REPO / "data/test.json").read_text())]
    assert not [(t, p) for t in pretrain["things"] for p in prompts if t.lower() in p]


def test_a_template_without_its_subject_slot_is_an_error_naming_the_file_and_field(tmp_path):
    broken = json.loads(PRETRAIN.read_text())
    broken["oppose"][2] = "It exploits artists."
    broken["zh"][0].pop("support")
    path = tmp_path / "pretrain.json"
    path.write_text(json.dumps(broken, ensure_ascii=False))
    with pytest.raises(ConfigError, match=r"pretrain.json: oppose\[2\]: must hold \{thing\} exactly once.*"
                                          r"zh\[0\].support: must be a text"):
        load_pretrain(str(path))
