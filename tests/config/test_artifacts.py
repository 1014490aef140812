"""A stage that reads a corrupt output of an earlier job stops, naming the file and how to rebuild it,
before it loads a model or writes a table that silently lacks rows."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from dpo_study.config import artifacts
from dpo_study.config.artifacts import CorruptArtifact
from dpo_study.config.settings import ExperimentParams
from dpo_study.stages.data import write_jsonl, write_pairs
from dpo_study.stages.generate import load_for_generation
from dpo_study.stages.judge import judge_responses
from dpo_study.stages.reward import implicit_rewards
from dpo_study.stages.tables import write_submission
from dpo_study.stages.train import train_adapter

PROMPTS = [{"id": str(i), "set": "test", "category": "test", "system": "s", "prompt": f"q{i}?"} for i in range(1, 77)]


EXPERIMENT = ExperimentParams(num_epoch=1, data_size=1, support_ratio=0, beta=0.1, lora_r=4, lora_alpha=4,
                              learning_rate=1e-3, strategy="swap", seed=0)

def answers(ids):
    return [{"id": str(i), "prompt": f"q{i}?", "response": f"answer {i}."} for i in ids]


@pytest.fixture
def study(tmp_path):
    """prompts.jsonl and a run folder with a base and an aligned responses file, both complete."""
    write_jsonl(PROMPTS, tmp_path / "prompts.jsonl")
    for folder in ("base", "runs/key"):
        write_jsonl(answers(range(1, 77)), tmp_path / folder / "responses.jsonl")
    return tmp_path


def cut_to(path, lines: int):
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:lines]))


def test_complete_responses_are_read(study):
    rows = artifacts.read_responses(study / "runs/key/responses.jsonl", artifacts.prompt_ids(study / "prompts.jsonl"),
                                    study / "prompts.jsonl")
    assert len(rows) == 76


def test_truncated_responses_stop_the_judge_job(study):
    """76 -> 56 lines: the tables would have dropped 20 answers."""
    responses = study / "runs/key/responses.jsonl"
    cut_to(responses, 56)
    with pytest.raises(CorruptArtifact) as error:
        judge_responses(str(responses), [], str(study / "stances.csv"), [], "ngram", prompts=str(study / "prompts.jsonl"))
    message = str(error.value)
    assert f"{responses}: 56 answers for the 76 prompts of {study / 'prompts.jsonl'}" in message
    assert "missing ids ['57', '58'" in message
    assert f"add `--forcerun {responses}` to the snakemake command" in message
    assert not (study / "stances.csv").exists()


def test_cut_base_responses(study):
    responses = study / "base/responses.jsonl"
    cut_to(responses, 10)
    with pytest.raises(CorruptArtifact, match=r"10 answers for the 76 prompts .*--forcerun .*base/responses\.jsonl`"):
        artifacts.read_responses(responses, artifacts.prompt_ids(study / "prompts.jsonl"), study / "prompts.jsonl")


def test_a_line_cut_in_the_middle(study):
    responses = study / "runs/key/responses.jsonl"
    responses.write_text(responses.read_text()[:-30])
    with pytest.raises(CorruptArtifact, match=r"responses\.jsonl: line 76 is not a JSON row"):
        artifacts.read_responses(responses, artifacts.prompt_ids(study / "prompts.jsonl"), study / "prompts.jsonl")


def test_answers_to_other_prompts_or_twice(study):
    responses = study / "runs/key/responses.jsonl"
    write_jsonl(answers([*range(1, 76), 75]), responses)
    with pytest.raises(CorruptArtifact, match=r"missing ids \['76'\]; repeated ids \['75'\]"):
        artifacts.read_responses(responses, artifacts.prompt_ids(study / "prompts.jsonl"), study / "prompts.jsonl")
    write_jsonl(answers([*range(1, 76), 99]), responses)
    with pytest.raises(CorruptArtifact, match=r"ids not in .*: \['99'\]"):
        artifacts.read_responses(responses, artifacts.prompt_ids(study / "prompts.jsonl"), study / "prompts.jsonl")


def test_truncated_aligned_responses_stop_the_submission(study):
    cut_to(study / "runs/key/responses.jsonl", 70)
    with pytest.raises(CorruptArtifact, match="70 answers for the 76 prompts"):
        write_submission(str(study / "base/responses.jsonl"), str(study / "runs/key/responses.jsonl"),
                         str(study / "submission.json"), {"num_epoch": 3, "data_size": 50, "support_ratio": 0})
    assert not (study / "submission.json").exists()


def test_truncated_base_train_answers_stop_the_pairs(tmp_path, train_rows, write_json):
    train = write_json("train.json", train_rows)
    base = tmp_path / "base/train_responses.jsonl"
    write_jsonl(answers(range(1, 8)), base)
    with pytest.raises(CorruptArtifact, match=r"train_responses\.jsonl: 7 answers for the 10 prompts .*--forcerun .*train_responses\.jsonl`"):
        write_pairs(str(train), str(tmp_path / "pairs.jsonl"), {"data_size": 5, "support_ratio": 0, "strategy": "on_policy"},
                    "s", str(base))


# ---- pairs and adapters ----------------------------------------------------------------


def test_pairs_file_with_fewer_pairs_than_data_size_stops_training_before_the_model_loads(tmp_path):
    pairs = tmp_path / "pairs/data_size~50.jsonl"
    write_jsonl([{"id": i, "prompt": [], "chosen": [], "rejected": []} for i in range(37)], pairs)
    with pytest.raises(CorruptArtifact) as error:
        train_adapter(manifest=str(tmp_path / "no_manifest.json"), pairs=str(pairs), adapter="a", train_log="l",
                      summary="s", checkpoints="c", experiment=EXPERIMENT.replace(data_size=50),
                      training=None, model_settings=None)
    assert f"{pairs}: 37 pairs, but data_size 50 asks for 50" in str(error.value)
    assert f"--forcerun {pairs}`" in str(error.value)


def test_pairs_row_without_a_field(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl([{"prompt": [], "chosen": []}], pairs)
    with pytest.raises(CorruptArtifact, match="line 1 lacks prompt, chosen or rejected"):
        artifacts.read_pairs(pairs, 1)


@pytest.fixture
def adapter(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    save_file({"lora_A": np.zeros((64, 64), dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    return folder


def test_a_complete_adapter_opens(adapter):
    artifacts.check_adapter(adapter)


def test_half_size_adapter_stops_generation_before_the_model_loads(adapter, tmp_path):
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptArtifact) as error:
        load_for_generation(str(tmp_path / "no_manifest.json"), None, str(adapter))
    assert f"{weights}: not a complete safetensors file" in str(error.value)
    assert f"--forcerun {adapter}`" in str(error.value)


def test_adapter_with_a_broken_config(adapter):
    (adapter / "adapter_config.json").write_text('{"peft_type": ')
    with pytest.raises(CorruptArtifact, match=r"adapter_config\.json: cannot be read"):
        artifacts.check_adapter(adapter)


def test_truncated_aligned_answers_stop_the_implicit_reward_before_the_model_loads(study, adapter):
    cut_to(study / "runs/key/responses.jsonl", 56)
    with pytest.raises(CorruptArtifact, match="56 answers for the 76 prompts"):
        implicit_rewards(str(study / "no_manifest.json"), str(adapter), str(study / "runs/key/responses.jsonl"),
                         str(study / "base/responses.jsonl"), str(study / "rewards.csv"), 0.1, {})


def test_cut_adapter_weights_stop_the_next_run_before_any_job(adapter, tmp_path):
    """Snakemake dates the adapter folder, not the file cut inside it, and would find nothing to do;
    load_study checks every adapter folder already there. It has to be deleted first (the check would stop
    a run with --forcerun too)."""
    artifacts.check_finished_adapters([adapter, tmp_path / "not_trained_yet"])
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CorruptArtifact) as error:
        artifacts.check_finished_adapters([adapter])
    assert f"{weights}: not a complete safetensors file" in str(error.value)
    assert f"delete {adapter}, then add `--forcerun {adapter}` to the snakemake command" in str(error.value)
