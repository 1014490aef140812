"""The fast paths compute what the plain ones do, on a briefly trained demo model (CPU):
the static-cache decode loop (replayed as a CUDA graph on a GPU) gives the plain generate's greedy answers, and the
reference log-probs computed once give the training the losses of the in-loop reference pass."""

import json

import pandas as pd
import pytest

from conftest import REPO, load_demo_study
from dpo_study.stages.data import prompt_records, write_pairs
from dpo_study.config.data_files import load_rows
from dpo_study.stages.demo_model import build_demo_model
from dpo_study.stages.generate import decode_mode, generate_answers, load_for_generation
from dpo_study.stages.train import train_adapter

STUDY = load_demo_study()  # the settings groups that the demo study's jobs get


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo model after a few pretraining steps: fluent enough to stop on <|eot_id|> sometimes."""
    path = tmp_path_factory.mktemp("demo")
    build_demo_model(train=str(REPO / "data/train.json"), test=str(REPO / "data/test.json"),
                     model_dir=str(path / "model"), manifest=str(path / "model.json"),
                     settings=STUDY.demo_model_settings.replace(steps=40), system_prompt=STUDY.system_prompt,
                     threads=2)
    return path


def prompts():
    system = STUDY.system_prompt
    probes = load_rows(REPO / "config/probes.yaml", "probes")[::6]  # one in six: every category, quickly
    return prompt_records(load_rows(REPO / "data/test.json", "test"), probes, system)


def test_static_cache_generation_gives_the_plain_greedy_answers(demo):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_for_generation(str(demo / "model.json"), STUDY.model_settings)
    # A LoRA adapter with random (non-zero) weights, as the aligned model has.
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                             init_lora_weights=False))
    records = prompts()
    generation = STUDY.generation_settings.replace(max_new_tokens=40, batch_size=5)  # a partial last batch
    plain = generate_answers(model, tokenizer, records, generation.replace(decode="plain"))
    static = generate_answers(model, tokenizer, records, generation.replace(decode="graph"))
    assert decode_mode(model, generation.replace(decode="graph")) == "static"  # no CUDA graphs on a CPU
    assert decode_mode(model, generation) == "plain"
    assert [r["id"] for r in static] == [r["id"] for r in records]
    assert [r["response"] for r in static] == [r["response"] for r in plain]
    assert [r["new_tokens"] for r in static] == [r["new_tokens"] for r in plain]
    assert any(r["response"] for r in plain)
    assert any(not r["hit_max_new_tokens"] for r in plain)  # rows that stop early are cut like generate's


def test_reference_log_probs_once_train_like_the_in_loop_reference(demo, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(str(REPO / "data/train.json"), str(pairs), {"data_size": 16, "support_ratio": 0.5,
                                                            "strategy": "swap"}, STUDY.system_prompt)
    training = STUDY.training_settings
    experiment = STUDY.experiment_params(STUDY.by_name["homework_default"].key).replace(
        num_epoch=2, learning_rate=2e-3, data_size=16)
    summaries, logs = {}, {}
    for precompute in (False, True):
        out = tmp_path / str(precompute)
        train_adapter(manifest=str(demo / "model.json"), pairs=str(pairs), adapter=str(out / "adapter"),
                      train_log=str(out / "log.csv"), summary=str(out / "summary.json"),
                      checkpoints=str(out / "checkpoints"), experiment=experiment,
                      # no dropout: it draws from the RNG in another order on the two paths, so the
                      # losses would agree only in distribution, not to 1e-4
                      training=training.replace(precompute_ref_logps=precompute, lora_dropout=0.0),
                      model_settings=STUDY.model_settings,
                      threads=2)
        summaries[precompute] = json.loads((out / "summary.json").read_text())
        logs[precompute] = pd.read_csv(out / "log.csv")
    assert summaries[True]["plan"]["precompute_ref_logps"] and summaries[True]["reference_pass_seconds"] > 0
    assert not summaries[False]["plan"]["precompute_ref_logps"] and summaries[False]["reference_pass_seconds"] == 0
    for column in ("loss", "rewards/margins"):
        assert list(logs[True][column]) == pytest.approx(list(logs[False][column]), abs=1e-4), column
    assert logs[True]["rewards/margins"].iloc[-1] != 0  # the policy moved away from the reference
