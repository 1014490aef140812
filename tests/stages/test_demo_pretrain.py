"""The demo model's pretraining text (data/demo_pretrain.json): answers that restate their question's subject."""

import json
import random

import pytest

from conftest import REPO
from dpo_study.config.errors import ConfigError
from dpo_study.stages.demo_pretrain import SLOT, draw_subject, load_pretrain, subject_example

PRETRAIN = REPO / "data/demo_pretrain.json"


def test_every_subject_answer_restates_its_question_or_its_subject_verbatim():
    pretrain = load_pretrain(str(PRETRAIN))
    rows = json.loads((REPO / "data/train.json").read_text())
    rng = random.Random(0)
    echoes = 0
    for i in range(300):
        state = rng.getstate()
        subject = draw_subject(pretrain, rng)
        rng.setstate(state)
        stance = ("support", "oppose")[i % 2]
        question, answer, echo = subject_example(pretrain, stance, rng, rows)
        # the question holds the subject (the draw replayed from the same state)
        assert f" {subject}" in question, (subject, question)
        if echo:
            # the build puts the question as asked before a training answer of the stance
            assert answer in [row[stance] for row in rows], answer
            echoes += 1
        else:
            # a template of the stance around the same subject
            assert subject in answer and answer not in [row[stance] for row in rows], (subject, answer)
    assert 100 < echoes < 200


def test_the_build_echoes_the_question_as_asked():
    """An echoed answer opens with the question the model was shown (its opener left out)."""
    from dpo_study.stages import demo_model

    rng = random.Random(3)
    for _ in range(50):
        opener, asked = demo_model.vary_parts("Should people use AI to make Ghibli-style book covers?", rng, keep_words=True)
        shown = opener + (asked[0].lower() + asked[1:] if opener else asked)
        assert shown.endswith(asked[1:]) and asked.endswith("?") and "book covers" in asked
        assert opener in demo_model.OPENERS


def test_subjects_are_too_many_to_memorise():
    """Subjects drawn during a build barely repeat: the model has to copy them, not recall them."""
    pretrain = load_pretrain(str(PRETRAIN))
    rng = random.Random(1)
    drawn = [draw_subject(pretrain, rng) for _ in range(5000)]
    assert len(set(drawn)) > 0.8 * len(drawn)


def test_the_stance_is_not_the_first_word():
    """Support and oppose templates open alike, so DPO cannot learn the stance from the first token."""
    pretrain = load_pretrain(str(PRETRAIN))
    first = lambda texts: sorted(t.split()[0] for t in texts)  # noqa: E731
    assert first(pretrain["support"]) == first(pretrain["oppose"])


def test_the_test_prompts_are_not_in_the_pretraining_text():
    text = PRETRAIN.read_text().lower()
    prompts = [row["prompt"].lower() for row in json.loads((REPO / "data/test.json").read_text())]
    assert not [p for p in prompts if p in text or p.rstrip("?") in text]


def test_bad_pretraining_text_is_an_error_naming_the_file_and_field(tmp_path):
    broken = json.loads(PRETRAIN.read_text())
    broken["oppose"][2] = "It exploits artists."
    broken["questions"][0] = f"Is {SLOT} fine for {SLOT}?"
    broken["words"] = []
    broken["zh"][0].pop("support")
    path = tmp_path / "pretrain.json"
    path.write_text(json.dumps(broken, ensure_ascii=False))
    with pytest.raises(ConfigError) as error:
        load_pretrain(str(path))
    message = str(error.value)
    for expected in ("field words: must be a non-empty list of texts", r"field questions[0]: must hold {thing} exactly once",
                     "field oppose[2]: must hold {thing} exactly once", "field zh[0].support: must be a non-empty text"):
        assert f"{path}: {expected}" in message


def test_a_missing_pretraining_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="demo pretraining file"):
        load_pretrain(str(tmp_path / "absent.json"))
