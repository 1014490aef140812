"""No remote code unless the config allows it, safetensors only, tokens never written, outputs stay inside."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, default_settings
from dpo_study.config.settings import GenerationSettings, ModelSettings
from dpo_study.config.validation import ConfigError
from dpo_study.stages.generate import generate_responses
from dpo_study.runtime.modeling import load_base, load_tokenizer, read_manifest
from snakemake_helpers import snakemake, workdir_with_config

SETTINGS = default_settings(ModelSettings, load_in_4bit=False)
GENERATION = default_settings(GenerationSettings, max_new_tokens=2, batch_size=4)

# A model folder whose config asks for code of its own; importing that code leaves a marker file.
CUSTOM_CODE = """
from pathlib import Path
Path(MARKER).touch()
from transformers import LlamaConfig, PreTrainedTokenizerFast
class CustomConfig(LlamaConfig):
    model_type = "dpo_study_custom"
class CustomTokenizer(PreTrainedTokenizerFast):
    pass
"""


TRUSTING_LOAD = """
import sys
from dpo_study.config.settings import ModelSettings
from dpo_study.runtime.modeling import load_base
try:
    load_base({"path": sys.argv[1]}, ModelSettings(trust_remote_code=True, load_in_4bit=False, max_seq_length=512,
                                                   recipe="fast"))
except Exception:
    pass  # the stand-in code is only a config class; what matters is that it ran
"""


def custom_code_model(folder, tiny_model, marker):
    shutil.copytree(tiny_model.parent / "model", folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="dpo_study_custom", auto_map={"AutoConfig": "custom.CustomConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": [None, "custom.CustomTokenizer"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (folder / "custom.py").write_text(f"MARKER = {str(marker)!r}\n" + CUSTOM_CODE)
    return {"path": str(folder)}


def test_model_code_is_not_run_unless_the_config_allows_it(tmp_path, tiny_model):
    marker = tmp_path / "CODE_RAN"
    manifest = custom_code_model(tmp_path / "custom", tiny_model, marker)
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_base(manifest, SETTINGS)
    load_tokenizer(manifest, SETTINGS)  # the folder's tokenizer class is a built-in one: no need for its code
    assert not marker.exists()
    # The same folder with the switch on does run it: the check above is not vacuous.
    # (in a process of its own, so that the code's copy goes to a scratch modules cache)
    subprocess.run(
        [sys.executable, "-c", TRUSTING_LOAD, manifest["path"]],
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_MODULES_CACHE": str(tmp_path / "modules")},
        capture_output=True,
    )
    assert marker.exists()


def test_pickled_model_weights_are_not_loaded(tmp_path, tiny_model):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model.parent / "model", folder)
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(OSError, match="safetensors"):
        load_base({"path": str(folder)}, SETTINGS)


def test_pickled_adapter_is_not_loaded(tmp_path, tiny_model):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    torch.save({}, adapter / "adapter_model.bin")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "1", "set": "test", "category": "test", "system": "s", "prompt": "q"}) + "\n")
    with pytest.raises(ConfigError, match=r"adapter folder '.*adapter' holds no \*\.safetensors weights"):
        generate_responses(str(tiny_model), str(prompts), str(tmp_path / "r.jsonl"), GENERATION, SETTINGS,
                           adapter=str(adapter))
    assert not (tmp_path / "r.jsonl").exists()


def hub_cache(folder, tiny_model, repo="tiny-org/tiny-model"):
    """A Hugging Face cache holding ``repo`` (as a download would leave it), for offline runs."""
    revision = "0" * 40
    cached = folder / f"models--{repo.replace('/', '--')}"
    shutil.copytree(tiny_model.parent / "model", cached / "snapshots" / revision)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(revision)
    return folder


def test_hub_model_offline_from_the_cache_and_the_token_is_never_written(tmp_path, tiny_model):
    secret = "secret-xyz-4c1d"
    cache = hub_cache(tmp_path / "hub", tiny_model)
    config = workdir_with_config(tmp_path / "work", {"model": {"name": "tiny-org/tiny-model"}})
    env = {"HF_HUB_CACHE": str(cache), "HF_TOKEN": secret}
    snakemake(tmp_path / "work", config, "results/models/tiny-org--tiny-model.json", env=env)
    manifest = read_manifest(tmp_path / "work/results/models/tiny-org--tiny-model.json")
    assert manifest["path"].startswith(str(cache)) and manifest["revision"] == "0" * 40
    written = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".snakemake.log") for p in written)
    assert not [p for p in written if secret.encode() in p.read_bytes()]


def test_hub_model_missing_from_the_cache_offline_is_rejected_before_any_job(tmp_path, tiny_model):
    cache = hub_cache(tmp_path / "hub", tiny_model)
    config = workdir_with_config(tmp_path / "work", {"model": {"name": "tiny-org/not-downloaded"}})
    result = snakemake(tmp_path / "work", config, "-n", check=False, env={"HF_HUB_CACHE": str(cache)})
    assert result.returncode != 0
    assert "model.name: 'tiny-org/not-downloaded' is not in the local Hugging Face cache" in result.stdout + result.stderr
    assert not (tmp_path / "work/results").exists()
