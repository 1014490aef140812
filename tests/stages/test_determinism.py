"""The demo model is built the same way twice (the pipeline tests start later studies from one build)."""

from conftest import REPO
from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT
from dpo_study.config.settings import DemoModelSettings
from dpo_study.stages.demo_model import build_demo_model

PRETRAIN = str(REPO / "data/demo_pretrain.json")  # the pretraining text the demo study builds with
TINY = DemoModelSettings(seed=3, steps=4, batch_size=8, learning_rate=0.003, vocab_size=400, hidden_size=32,
                         num_layers=1, num_heads=2, intermediate_size=64)


def test_demo_model_build_is_deterministic(tmp_path):
    built = []
    for name in ("first", "second"):
        folder = tmp_path / name
        build_demo_model(str(REPO / "data/train.json"), str(REPO / "data/test.json"), str(folder / "model"),
                         str(folder / "model.json"), settings=TINY, system_prompt=DEFAULT_SYSTEM_PROMPT, threads=2,
                         pretrain=PRETRAIN)
        built.append({f.name: f.read_bytes() for f in sorted((folder / "model").iterdir())})
    assert "model.safetensors" in built[0] and "tokenizer.json" in built[0]
    assert built[0] == built[1]
    other = tmp_path / "other_seed"
    build_demo_model(str(REPO / "data/train.json"), str(REPO / "data/test.json"), str(other / "model"),
                     str(other / "model.json"), settings=TINY.replace(seed=4), system_prompt=DEFAULT_SYSTEM_PROMPT, threads=2,
                     pretrain=PRETRAIN)
    assert (other / "model/model.safetensors").read_bytes() != built[0]["model.safetensors"]
