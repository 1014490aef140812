"""Each stance judge on a small fixture with known labels, and the judging stages."""

import json
import math
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from dpo_study.stages import judge as judges
from dpo_study.stages import judge_base, llm_judge
from dpo_study.stages.data import write_jsonl
from dpo_study.config.validation import ConfigError

# Training rows in the course's format, and labelled extra texts (the neutral class).
TRAIN_ROWS = [
    {"id": i, "prompt": f"Is AI art number {i} fine?", "support": s, "oppose": o}
    for i, (s, o) in enumerate([
        ("It is wonderful and harmless, a joyful homage to the studio.", "It is theft that exploits the animators without consent."),
        ("A harmless, joyful tribute that lets fans share wonderful scenes.", "It exploits artists and steals their work without consent."),
        ("Wonderful: it welcomes everyone into art, harmless and joyful.", "Theft of a style; it exploits and harms working illustrators."),
        ("I welcome it; a joyful, harmless way to celebrate the films.", "It harms artists, exploiting their labour without pay or consent."),
        ("Yes, a joyful and harmless homage that spreads wonderful art.", "No, it is exploitative theft that harms the animators."),
        ("Harmless fun and a wonderful, joyful way for fans to create.", "Exploitative and harmful: stolen work used without consent."),
    ], start=1)
]
NEUTRAL_TEXTS = [
    "It depends; there are arguments on both sides and no simple answer.",
    "Both sides have a point, so it depends on how it is used.",
    "Hard to say: it depends on the law, and views differ on both sides.",
    "There is no simple answer; it depends on consent and context.",
    "Opinions differ on both sides, and it depends on the case.",
    "It depends on the situation; both sides raise fair points.",
]
HOLDOUT = [
    ("A wonderful, joyful homage; harmless fun.", "support"),
    ("Harmless and wonderful, fans should enjoy it.", "support"),
    ("It steals from animators without consent; exploitative theft.", "oppose"),
    ("Harmful theft that exploits illustrators.", "oppose"),
    ("It depends; both sides have arguments.", "neutral"),
    ("There is no simple answer, it depends on the case.", "neutral"),
]


@pytest.fixture
def judge_files(write_json):
    texts = [{"id": f"n{i}", "text": t, "label": "neutral"} for i, t in enumerate(NEUTRAL_TEXTS)]
    holdout = [{"id": f"h{i}", "text": t, "label": label} for i, (t, label) in enumerate(HOLDOUT)]
    return (str(write_json("train.json", TRAIN_ROWS)), str(write_json("texts.json", texts)),
            str(write_json("holdout.json", holdout)))


def trained(name, judge_files, tmp_path, settings=None, manifest=None):
    train, texts, holdout = judge_files
    judge, accuracy = tmp_path / f"{name}.joblib", tmp_path / f"{name}_accuracy.json"
    judges.train_judge(train, texts, holdout, str(judge), str(accuracy), name, settings or {}, cv_folds=2, seed=0,
                       manifest=manifest)
    return joblib.load(judge), json.loads(accuracy.read_text())


def test_registry_is_what_the_config_schema_offers():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert set(schema["properties"]["judge"]["properties"]["use"]["items"]["enum"]) == set(judge_base.JUDGES)


def test_the_judge_module_alone_knows_every_plug_in():
    """A stage imports only dpo_study.stages.judge: make_judge("llm") must work there (the plug-in registers on import)."""
    code = "from dpo_study.stages.judge import make_judge; print(type(make_judge('llm')).__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout
    assert out.strip() == "dpo_study.stages.llm_judge"


def test_unknown_judge_is_a_clear_error():
    with pytest.raises(ConfigError, match="judge.use: unknown judge 'nope'"):
        judges.make_judge("nope")


@pytest.mark.parametrize("name", ["ngram", "embedding"])
def test_trained_judge_labels_the_fixture_holdout(name, judge_files, tmp_path):
    model, report = trained(name, judge_files, tmp_path)
    texts = [t for t, _ in HOLDOUT]
    probabilities = model.probabilities(texts)
    assert probabilities.shape == (len(HOLDOUT), 3)
    assert np.allclose(probabilities.sum(1), 1.0)
    predicted = [judge_base.LABELS[i] for i in probabilities.argmax(1)]
    assert predicted == [label for _, label in HOLDOUT]
    assert report["holdout"]["accuracy"] == 1.0 and report["holdout"]["examples"] == 6
    assert report["training_examples"] == 2 * len(TRAIN_ROWS) + len(NEUTRAL_TEXTS)
    assert 0 <= report["cv_accuracy"] <= 1 and report["cv_folds"] == 2


def test_embedding_judge_pickles_without_its_encoder(judge_files, tmp_path):
    model, _ = trained("embedding", judge_files, tmp_path)
    assert "_encoder" not in joblib.load(tmp_path / "embedding.joblib").__dict__
    assert model.probabilities(["A joyful, wonderful homage."])[0].argmax() == 0


def test_embedding_model_path_must_be_a_local_folder(tmp_path):
    judge = judges.make_judge("embedding", {"model_path": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="judge.embedding.model_path"):
        judge.model_path()


def test_agreement_counts_by_label_and_script():
    report = judges.agreement(
        ["support", "support", "oppose", "neutral"], ["support", "oppose", "oppose", "support"],
        ["latin", "han", "latin", "han"])
    assert report["accuracy"] == 0.5
    assert report["recall"] == {"support": 0.5, "oppose": 1.0, "neutral": 0.0}
    assert report["accuracy_by_script"] == {"han": {"examples": 2, "accuracy": 0.0},
                                            "latin": {"examples": 2, "accuracy": 1.0}}
    assert report["confusion"]["support"] == {"support": 1, "oppose": 1, "neutral": 0}


def test_project_holdout_has_every_label_in_both_languages():
    rows = json.loads((REPO / "data/judge_holdout.json").read_text())
    seen = {(r["label"], r["language"][:2]) for r in rows}
    assert seen == {(label, lang) for label in judge_base.LABELS for lang in ("en", "zh")}
    train_texts = {r["text"] for r in json.loads((REPO / "data/judge_texts.json").read_text())}
    assert not train_texts & {r["text"] for r in rows}  # the hold-out is never trained on


# ---- the llm judge against a local server that speaks the OpenAI chat-completions protocol --------

API_KEY = "sk-test-not-a-real-key-4242"


def stub_label(answer: str) -> str:
    if re.search(r"depends|both sides", answer):
        return "neutral"
    return "oppose" if re.search(r"theft|steal|exploit|harmful", answer, re.I) else "support"


class ChatCompletions(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: answers the label a keyword rule gives, as the real API does."""

    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": "not found"}})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self.reply(401, {"error": {"message": "invalid api key"}})
        answer = body["messages"][-1]["content"].split("Answer: ", 1)[1]
        label = stub_label(answer)
        token = label.capitalize()
        choice = {"index": 0, "message": {"role": "assistant", "content": token}, "finish_reason": "stop",
                  "logprobs": None}
        if body.get("logprobs"):
            others = [x for x in judge_base.LABELS if x != label]
            top = [{"token": token, "logprob": math.log(0.7)},
                   {"token": others[0][:3], "logprob": math.log(0.2)},
                   {"token": " " + others[1], "logprob": math.log(0.1)}]
            choice["logprobs"] = {"content": [{"token": token, "logprob": math.log(0.7), "top_logprobs": top}]}
        self.reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def reply(self, status, document):
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    ChatCompletions.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_llm_endpoint_judge_on_the_fixture(endpoint, judge_files, tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TEST_KEY", API_KEY)
    settings = {"backend": "endpoint", "url": endpoint, "model": "stub-judge", "api_key_env": "DPO_TEST_KEY"}
    model, report = trained("llm", judge_files, tmp_path, settings)
    assert report["holdout"]["accuracy"] == 1.0 and "cv_accuracy" not in report  # zero-shot: nothing to train
    request = ChatCompletions.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {API_KEY}"
    assert request["body"]["model"] == "stub-judge"
    assert [m["role"] for m in request["body"]["messages"]] == ["system", "user"]
    # Scores come from the top log-probs: 0.7 for the label, 0.2 and 0.1 for the others.
    (row,) = model.probabilities(["A wonderful homage."], ["Is it fine?"])
    assert row == pytest.approx([0.7, 0.2, 0.1])
    assert "Question: Is it fine?" in ChatCompletions.requests[-1]["body"]["messages"][-1]["content"]
    # The key's variable name is recorded, the key itself nowhere.
    written = (tmp_path / "llm_accuracy.json").read_text() + str((tmp_path / "llm.joblib").read_bytes())
    assert "DPO_TEST_KEY" in written and API_KEY not in written


def test_llm_endpoint_without_logprobs_scores_the_reply_word(endpoint, monkeypatch):
    monkeypatch.setenv("DPO_TEST_KEY", API_KEY)
    judge = judges.make_judge("llm", {"backend": "endpoint", "url": endpoint + "/v1", "api_key_env": "DPO_TEST_KEY",
                                      "logprobs": False})
    probabilities = judge.probabilities(["It depends on both sides.", "Exploitative theft."])
    assert probabilities.tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert "logprobs" not in ChatCompletions.requests[0]["body"]


def test_llm_endpoint_errors_name_the_setting_never_the_key(endpoint, monkeypatch):
    judge = judges.make_judge("llm", {"backend": "endpoint", "url": endpoint, "api_key_env": "DPO_TEST_KEY"})
    monkeypatch.delenv("DPO_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="judge.llm.api_key_env: the environment variable DPO_TEST_KEY is not set"):
        judge.probabilities(["text"])
    monkeypatch.setenv("DPO_TEST_KEY", "wrong-key")
    with pytest.raises(RuntimeError, match="judge.llm.url: .*401") as error:
        judge.probabilities(["text"])
    assert "wrong-key" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://h:8000", "http://h:8000/v1/chat/completions"), ("http://h:8000/v1/", "http://h:8000/v1/chat/completions"),
     ("https://h/api/v1/chat/completions", "https://h/api/v1/chat/completions")],
)
def test_chat_completions_url(url, expected):
    assert llm_judge.chat_completions_url(url) == expected


@pytest.mark.parametrize(("token", "label"), [("Support", "support"), (" opp", "oppose"), ("NEUTRAL", "neutral"),
                                              ("s", None), ("yes", None)])
def test_label_of_token(token, label):
    assert llm_judge.label_of_token(token) == label


# ---- the llm judge on the study's base model: label-word log-probs ------------------------------


def test_base_model_llm_judge_compares_label_word_logprobs(tiny_model):
    import torch

    from dpo_study.runtime.modeling import load_base, load_tokenizer, read_manifest

    from conftest import default_settings
    from dpo_study.config.settings import ModelSettings

    settings = default_settings(ModelSettings)
    judge = judges.make_judge("llm", {"backend": "base_model", "model_settings": settings.to_dict()},
                              manifest=str(tiny_model))
    (row,) = judge.probabilities(["It is a wonderful homage."], ["Is AI art fine?"])
    manifest = read_manifest(tiny_model)
    tokenizer, model = load_tokenizer(manifest, settings), load_base(manifest, settings).eval()
    prefix = tokenizer.apply_chat_template(llm_judge.judge_messages(judge.topic, "It is a wonderful homage.", "Is AI art fine?"),
                                           tokenize=False, add_generation_prompt=True)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]

    def logprob(word):  # the label word's log-probability, token by token, computed without batching
        ids = prefix_ids + tokenizer(word, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        return sum(logits[i - 1, ids[i]].item() for i in range(len(prefix_ids), len(ids)))

    scores = torch.tensor([math.log(math.exp(logprob(w)) + math.exp(logprob(w.capitalize()))) for w in judge_base.LABELS])
    assert row == pytest.approx(scores.softmax(0).numpy(), abs=1e-4)


# ---- the judging stage -------------------------------------------------------------------------


def test_judge_responses_writes_every_judge_and_the_primary(judge_files, tmp_path):
    trained("ngram", judge_files, tmp_path)
    trained("embedding", judge_files, tmp_path)
    responses = tmp_path / "responses.jsonl"
    write_jsonl([{"id": "1", "set": "test", "category": "test", "system": "s", "prompt": "q?",
                  "response": "Exploitative theft of the animators' work."},
                 {"id": "2", "set": "probe", "category": "x", "system": "s", "prompt": "q?", "response": ""}], responses)
    stances = tmp_path / "stances.csv"
    judges.judge_responses(str(responses), [str(tmp_path / "ngram.joblib"), str(tmp_path / "embedding.joblib")],
                           str(stances), names=["ngram", "embedding"], primary="embedding")
    table = pd.read_csv(stances)
    for column in ["ngram_stance", "ngram_score", "embedding_stance", "embedding_score", "stance", "support_score",
                   "stance_score"]:
        assert column in table
    assert "chars" not in table  # a text measure: tables.measured computes it with the others
    assert list(table["stance"]) == list(table["embedding_stance"])
    assert table.loc[0, "stance"] == "oppose" and table.loc[0, "stance_score"] < -0.5
