"""The one bridge from a Snakemake rule to a stage function of this package.

Every rule's script is ``call(stage_function, snakemake)``: the rule's named input, output and
params become the function's keyword arguments, so each stage is a plain function that tests call
without Snakemake. Everything the stage prints or logs goes to the rule's log file.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import redirect_stderr, redirect_stdout


# Params that are there for Snakemake's params trigger only, not arguments of the stage: the
# hash of the code the rule runs (dpo_study.provenance.code_version).
TRIGGER_PARAMS = ("code",)


def stage_kwargs(func, smk) -> dict:
    params = {name: value for name, value in smk.params.items() if name not in TRIGGER_PARAMS}
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **params}
    if "threads" in inspect.signature(func).parameters:
        kwargs["threads"] = smk.threads
    return kwargs


def call(func, smk) -> None:
    with open(smk.log[0], "w", buffering=1) as log_file, redirect_stdout(log_file), redirect_stderr(log_file):
        logging.basicConfig(
            stream=log_file, level=logging.INFO, force=True,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        func(**stage_kwargs(func, smk))
