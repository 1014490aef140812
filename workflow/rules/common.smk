import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The stage code lives in src/; put it first on the path of every job, in any environment.
SRC = str(Path(workflow.basedir, "src").resolve())
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
sys.path.insert(0, SRC)

from dpo_study.experiments import ConfigError, expand
from dpo_study.data import load_rows
from dpo_study.modeling import check_model_name, model_slug
from dpo_study.backends import batch_split
from dpo_study.generate import check_generation


validate(config, workflow.source_path("../schemas/config.schema.yaml"))


def checked(check, *args):
    """Run an input check at parse time; a ConfigError stops the run before any job."""
    try:
        return check(*args)
    except ConfigError as error:
        raise WorkflowError(f"Invalid study input: {error}") from None


EXPERIMENTS = checked(expand, config)
RUNS = {e.key: e for e in EXPERIMENTS}  # identical parameter sets share one run
BY_NAME = {e.name: e for e in EXPERIMENTS}
TRAIN_ROWS = checked(load_rows, config["data"]["train"], "train")
checked(load_rows, config["data"]["test"], "test")
for probe_file in config["data"]["probes"]:
    checked(load_rows, probe_file, "probes")
for e in EXPERIMENTS:
    if e.params["data_size"] > len(TRAIN_ROWS):
        raise WorkflowError(
            f"Invalid study input: experiment {e.name!r}, field data_size: {e.params['data_size']} "
            f"is larger than the {len(TRAIN_ROWS)} rows of {config['data']['train']}"
        )
checked(check_model_name, config["model"]["name"])
checked(batch_split, config["training"], config["training"]["recipe"])
checked(check_generation, config["generation"])

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
    """What every model-loading job needs; the recipe and max length decide the base precision."""
    return {
        "trust_remote_code": config["model"]["trust_remote_code"],
        "load_in_4bit": config["model"]["load_in_4bit"],
        "max_seq_length": config["model"]["max_seq_length"],
        "recipe": config["training"]["recipe"],
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


def named_experiment_params(wildcards):
    return BY_NAME[wildcards.experiment].params


def aligned_responses(wildcards):
    return f"{run_dir(BY_NAME[wildcards.experiment].key)}/responses.jsonl"


def experiment_records():
    return [{"name": e.name, **e.params} for e in EXPERIMENTS]


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
