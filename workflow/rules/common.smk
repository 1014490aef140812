import os
import sys
import warnings
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import min_version

min_version("9.0")

# The stage code lives in src/; put it first on the path of every job, in any environment.
# (Set here, not read from the user: no envvars: directive applies.)
SRC = str(Path(workflow.basedir, "src").resolve())
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)
sys.path.insert(0, SRC)

from dpo_study.config.errors import ConfigError
from dpo_study.config.provenance import code_version
from dpo_study.config.study import load_study


def checked(check, *args):
    """Run an input check at parse time; a ConfigError stops the run before any job."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = check(*args)
        except ConfigError as error:
            raise WorkflowError(f"Invalid study input:\n{error}") from None
    for warning in caught:
        logger.warning(f"Warning: {warning.message}")
    return result


# The --configfile files first (the last one wins), so that errors name the file to fix; the
# command line's --config values above them all.
CONFIG_FILES = [*reversed(workflow.overwrite_configfiles), *workflow.configfiles]
CONFIG_SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
# The one entry point of the parse: strict reading of each file, the schema (filling in its defaults,
# in place) and every check, each once (src/dpo_study/config/study.py).
STUDY = checked(
    load_study,
    config,
    CONFIG_FILES,
    CONFIG_SCHEMA,
    dict(workflow.config_settings.config),
)

RESULTS = STUDY.results
MODEL = STUDY.model_name
MODEL_SLUG = STUDY.model_slug
MODEL_MANIFEST = STUDY.manifest
RUNS = STUDY.runs
BASE = STUDY.base_dir  # the base model's folder
RUN = STUDY.run_dir("{key}")  # a run's folder
JUDGE_KEY = STUDY.keys["judge"]
JUDGES = STUDY.judges
PRIMARY_JUDGE = STUDY.primary_judge
ENV = f"../../envs/{STUDY.software_env}.yaml"


# One path segment each: experiment names and keys are checked in dpo_study.config.experiments (a pattern
# joining every key would be matched against every path, and the DAG would grow quadratically).
wildcard_constraints:
    key="[^/]+",
    data_key="[^/]+",
    experiment="[^/]+",
    judge="|".join(JUDGES),
    prompt_set="|".join(STUDY.prompt_sets),


# ---- input functions and params: thin views of STUDY (src/dpo_study/config/study.py) -----------
# A settings group travels as its plain values (``.to_dict()``): Snakemake's params trigger compares
# their repr (a dataclass it would skip), and the stage runner rebuilds the class the stage declares.


def experiment_params(wildcards):
    return STUDY.experiment_params(wildcards.key).to_dict()


def pairs_file(wildcards):
    return STUDY.pairs_file(wildcards.key)


def data_params(wildcards):
    return STUDY.data_params(wildcards.data_key)


def pairs_inputs(wildcards):
    return STUDY.pairs_inputs(wildcards.data_key)


def checkpoint_dir(wildcards):
    return STUDY.checkpoint_dir(wildcards.key)


def named_experiment_params(wildcards):
    return STUDY.by_name[wildcards.experiment].params


def aligned_responses(wildcards):
    return STUDY.aligned_responses(wildcards.experiment)


def judge_settings(wildcards):
    return STUDY.judge_settings(wildcards.judge).to_dict()


def judge_cv_folds(wildcards):
    return STUDY.settings_group("judge", wildcards.judge).cv_folds


def judge_seed(wildcards):
    return STUDY.settings_group("judge", wildcards.judge).seed


def judge_gpus(wildcards):
    return int(STUDY.judge_runs_model(wildcards.judge))


def judge_manifest_input(wildcards):
    return (
        {"manifest": MODEL_MANIFEST} if STUDY.judge_runs_model(wildcards.judge) else {}
    )


def judges_manifest_input(wildcards):
    return {"manifest": MODEL_MANIFEST} if any_judge_runs_model() else {}


def any_judge_runs_model():
    return any(STUDY.judge_runs_model(j) for j in JUDGES)


def code(script):
    """The hash of the code workflow/scripts/<script>.py runs: a params entry, so that a change to
    that code (dpo_study modules included) re-runs the rule's jobs (dpo_study.config.provenance).
    """
    return code_version(Path(workflow.basedir, "workflow/scripts", f"{script}.py"))


def prompt_set_input(wildcards):
    return STUDY.prompt_sets[wildcards.prompt_set]


def prompt_set_kind(wildcards):
    return "test" if wildcards.prompt_set == "test" else "probe"


# Warm start (src/dpo_study/runtime/warm.py): once the DAG is known, the GPU worker the first GPU job
# will use starts and loads the base model while the CPU jobs run. Not in a dry run (no onstart).
onstart:
    from dpo_study.runtime.warm import pending_gpu_kwargs, warm_start

    warm_start(pending_gpu_kwargs(workflow.dag.needrun_jobs()), STUDY.software, workflow.local_exec)
