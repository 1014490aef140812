"""One training job as the workflow runs it (workflow/scripts/train_adapter.py), without Snakemake.

The process does what a job does, in the same order: claim a GPU, import Unsloth first when the
plan trains with it, import the stage, train, save. The caller times the whole process.

    python bench/train_job.py MANIFEST PAIRS OUT_DIR '{"recipe": "homework", "backend": "unsloth"}'

DPO_BENCH_CAPABILITY=7.5 makes the job plan as on a GPU of that compute capability (7.5: the T4,
which has no bf16): the fp16 plan, forced on a GPU that has bf16.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import yaml  # noqa: E402
from random_model import stand_in_encoder  # noqa: E402


def defaults(section: str) -> dict:
    """The config schema's defaults of one section (what a config that sets nothing gets)."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    return {k: v["default"] for k, v in schema["properties"][section]["properties"].items() if "default" in v}


def study(training_overrides: dict):
    """The study of config/config.yaml with ``training_overrides``: its settings groups as the workflow
    gives them to a training job. (Its model name is replaced: the manifest is the command line's.)"""
    from dpo_study.config.study import load_study

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["model"] = {**config["model"], "name": "demo"}  # no Hub look-up for a model this job does not use
    config["training"] = {**config["training"], **training_overrides}
    # The GPU image lacks the bundled relevance encoder, which every study's parse checks; a training
    # job does not use it: a random one of its shape (as bench/study.py builds) will do.
    encoder = stand_in_encoder(Path(tempfile.gettempdir(), "dpo-bench-encoder"))
    if encoder is not None:
        config["judge"] = {**config["judge"], "embedding": {**config["judge"].get("embedding", {}),
                                                            "model_path": str(encoder)}}
    cwd = os.getcwd()
    os.chdir(REPO)  # the config's data paths are the checkout's
    try:
        return load_study(config, [REPO / "config/config.yaml"])
    finally:
        os.chdir(cwd)


def main(manifest: str, pairs: str, out: str, overrides: str) -> None:
    from dpo_study.runtime import runner, smk

    settings = study(json.loads(overrides))
    training, model_settings = settings.training_settings, settings.model_settings
    smk.claim_gpu()
    if os.environ.get("DPO_BENCH_CAPABILITY"):
        from dpo_study.runtime import plans

        forced = tuple(int(part) for part in os.environ["DPO_BENCH_CAPABILITY"].split("."))
        plans.gpu_capability = lambda: forced
    # The job's one plan, as the stage runner makes it: Unsloth first when the plan trains with it.
    plan = runner.job_plan({"manifest": manifest, "training": training, "model_settings": model_settings})
    if plan.unsloth:
        from dpo_study.runtime.backends import import_unsloth

        import_unsloth()

    from dpo_study.stages.train import train_adapter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out_dir = Path(out)
    train_adapter(
        manifest=manifest, pairs=pairs, adapter=str(out_dir / "adapter"), train_log=str(out_dir / "train_log.csv"),
        summary=str(out_dir / "train_summary.json"), checkpoints=str(out_dir / "checkpoints"),
        experiment=settings.experiment_params(settings.by_name["homework_default"].key), training=training,
        model_settings=model_settings, threads=4, plan=plan,
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
