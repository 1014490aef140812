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

from dpo_study.experiments import ConfigError, expand
from dpo_study.data import load_rows
from dpo_study.modeling import check_model_name, model_slug
from dpo_study.provenance import experiment_config_hash
from dpo_study.validation import (
    check_prompt_ids,
    check_questions,
    check_results_folder,
    validate_config,
)


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


# The --configfile files first (the last one wins), so that errors name the file to fix.
CONFIG_FILES = [*reversed(workflow.overwrite_configfiles), *workflow.configfiles]
checked(
    validate_config,
    config,
    workflow.source_path("../schemas/config.schema.yaml"),
    CONFIG_FILES,
)
checked(check_results_folder, config["results"], CONFIG_FILES)
EXPERIMENTS = checked(expand, config)
RUNS = {e.key: e for e in EXPERIMENTS}  # identical parameter sets share one run
BY_NAME = {e.name: e for e in EXPERIMENTS}
checked(check_questions, config["questions"], BY_NAME)
TRAIN_ROWS = checked(load_rows, config["data"]["train"], "train")
PROMPT_FILES = {
    config["data"]["test"]: checked(load_rows, config["data"]["test"], "test")
}
for probe_file in config["data"]["probes"]:
    PROMPT_FILES[probe_file] = checked(load_rows, probe_file, "probes")
checked(check_prompt_ids, PROMPT_FILES)
for e in EXPERIMENTS:
    if e.params["data_size"] > len(TRAIN_ROWS):
        raise WorkflowError(
            f"Invalid study input: experiment {e.name!r}, field data_size: {e.params['data_size']} "
            f"is larger than the {len(TRAIN_ROWS)} rows of {config['data']['train']}"
        )
checked(check_model_name, config["model"]["name"])

RESULTS = config["results"]
MODEL = config["model"]["name"]
MODEL_SLUG = model_slug(MODEL)
MODEL_MANIFEST = f"{RESULTS}/models/{MODEL_SLUG}.json"
MODEL_RESULTS = f"{RESULTS}/{MODEL_SLUG}"
ENV = f"../../envs/{config['software']['env']}.yaml"


wildcard_constraints:
    key="|".join(RUNS) or "none",
    data_key="[^/]+",
    experiment="|".join(BY_NAME),


# ---- input functions and params -------------------------------------------------------


def model_settings():
    return {
        "trust_remote_code": config["model"]["trust_remote_code"],
        "load_in_4bit": config["model"]["load_in_4bit"],
    }


def training_settings():
    return {**config["training"], "max_length": config["model"]["max_seq_length"]}


def experiment_params(wildcards):
    return RUNS[wildcards.key].params


def pairs_file(wildcards):
    return f"{RESULTS}/pairs/{RUNS[wildcards.key].data_key}.jsonl"


def data_params(wildcards):
    """num_epoch etc. do not shape the pairs: only data_size, support_ratio, strategy (and seed)."""
    for e in EXPERIMENTS:
        if e.data_key == wildcards.data_key:
            return {n: e.params[n] for n in ("data_size", "support_ratio", "strategy")}
    raise WorkflowError(f"no experiment uses the data parameters {wildcards.data_key}")


def run_dir(key):
    return f"{MODEL_RESULTS}/runs/{key}"


def checkpoint_dir(wildcards):
    """Not an output on purpose: it must survive a failed or killed job, for the rerun to resume."""
    return f"{run_dir(wildcards.key)}/checkpoints"


def named_experiment_params(wildcards):
    return BY_NAME[wildcards.experiment].params


def aligned_responses(wildcards):
    return f"{run_dir(BY_NAME[wildcards.experiment].key)}/responses.jsonl"


def experiment_records():
    return [
        {
            "name": e.name,
            **e.params,
            "config_hash": experiment_config_hash(e.params, config),
        }
        for e in EXPERIMENTS
    ]


def all_summaries():
    return [f"{run_dir(e.key)}/train_summary.json" for e in EXPERIMENTS]


def all_stances():
    return [f"{run_dir(e.key)}/stances.csv" for e in EXPERIMENTS]


def all_outputs():
    return [
        f"{RESULTS}/tables/experiments.csv",
        f"{RESULTS}/tables/responses.csv",
        *[f"{RESULTS}/submissions/{e.name}.json" for e in EXPERIMENTS],
    ]
