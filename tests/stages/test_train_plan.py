"""The batch split is planned for the longest sequence TRL will train on (stages.train.longest_sequence)."""

import json

import pytest

from conftest import REPO
from dpo_study.config.data_files import load_rows
from dpo_study.stages.data import build_pairs
from dpo_study.stages.train import longest_sequence


@pytest.mark.parametrize("data_size", [10, 50])
def test_longest_sequence_is_the_longest_conversation_trl_tokenizes(tiny_model, tmp_path, data_size):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    path = json.loads(tiny_model.read_text())["path"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    pairs = [{k: p[k] for k in ("prompt", "chosen", "rejected")}
             for p in build_pairs(load_rows(REPO / "data/train.json", "train"), data_size, 0.5)]
    trainer = DPOTrainer(model=model, ref_model=None, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
                         args=DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], max_length=512),
                         peft_config=LoraConfig(r=2, target_modules=["q_proj"]))
    tokenized = trainer.train_dataset
    trained = max(len(p) + max(len(c), len(r)) for p, c, r in
                  zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"]))
    assert longest_sequence(tokenizer, pairs) == trained
