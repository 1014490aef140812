"""bench/train_job.py on a CPU: one training job as the workflow gives it its settings (the Study's)."""

import json
import subprocess
import sys

from conftest import REPO
from dpo_study.stages.data import write_pairs
from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT


def test_train_job_trains_with_the_study_settings(tiny_model, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(str(REPO / "data/train.json"), str(pairs), {"data_size": 50, "support_ratio": 0.0, "strategy": "swap"},
                DEFAULT_SYSTEM_PROMPT)
    out = tmp_path / "job"
    subprocess.run([sys.executable, str(REPO / "bench/train_job.py"), str(tiny_model), str(pairs), str(out),
                    json.dumps({"recipe": "homework"})], check=True, cwd=tmp_path, timeout=600)
    summary = json.loads((out / "train_summary.json").read_text())
    # The homework's 3 epochs of 50 pairs in steps of 8 pairs, by the homework recipe's 2 x 4 split.
    assert summary["pairs"] == 50 and summary["steps"] == 21
    assert summary["plan"]["recipe"] == "homework"
    assert (summary["plan"]["per_device_train_batch_size"], summary["plan"]["gradient_accumulation_steps"]) == (2, 4)
    assert (out / "adapter/adapter_model.safetensors").is_file()
    assert not (out / "checkpoints").exists()
