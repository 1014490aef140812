"""Stage ``resolve_model``: where the study's model is, recorded once for every other job.

Torch-free on purpose: this job is the root of every real study's DAG, and the warm start
(``runtime.warm``) waits for its manifest before it starts the GPU worker, so its start-up time is
every run's. Its code version (``config.provenance``) is only this module's and the configuration
floor's: an edit of the model-loading code does not re-run it, and with it the whole study.
"""

from __future__ import annotations

import os
from pathlib import Path

from dpo_study.config import atomic
from dpo_study.config.model import check_model_folder, hub_offline


def resolve_model(manifest: str, name: str) -> None:
    """Stage: find (download once, if online) a model and record where it is, for the other stages;
    a model without a config or tokenizer stops here, before any GPU job (its modules are checked
    against training.target_modules at every parse once the manifest exists)."""
    record = {"name": name}
    if Path(name).is_dir():
        record["path"] = str(Path(name).resolve())
    else:
        from huggingface_hub import snapshot_download

        # Weights as safetensors only: no pickled checkpoints are fetched or loaded.
        record["path"] = snapshot_download(
            name,
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"],
            local_files_only=hub_offline(),
            token=os.environ.get("HF_TOKEN"),
        )
        record["revision"] = Path(record["path"]).name
    check_model_folder(record["path"], (), f"model.name {name!r}")
    atomic.write_json(manifest, record)
