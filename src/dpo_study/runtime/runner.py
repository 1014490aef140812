"""The one stage runner: how a job's stage runs, in the job's own process or in a GPU worker.

``run_stage`` sends everything the stage prints or logs to the job's log, imports Unsloth first when
the job's plan trains with it, imports the stage by name and calls it with the job's arguments as
the stage declares them (``stage_arguments``). Its two callers: ``runtime.smk`` (the stage in the
Snakemake job's process) and ``runtime.worker_process`` (the stage in the resident worker of a GPU).

The job's plan (``runtime.plans.JobPlan``: how the base model loads, a training job's backend and
batch split) is computed once, by ``job_plan`` before the stage's module is imported, and handed to
a stage that takes ``plan``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import traceback
import typing
from collections.abc import Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout

from dpo_study.config.model import read_manifest
from dpo_study.config.settings import ModelSettings, TrainingSettings, settings_class

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resolve(stage: str):
    """The stage function of ``"module:function"`` (its module imported now)."""
    module, _, function = stage.partition(":")
    return getattr(importlib.import_module(module), function)


def as_settings(group, value):
    """A settings group from the plain values a Snakemake param carries (an object stays as it is)."""
    return group.from_dict(value) if isinstance(value, Mapping) else value


def job_plan(kwargs: dict):
    """The job's plan (``plans.JobPlan``) from its arguments: the manifest of the model it loads, and
    its model and training settings. Imports torch, not transformers: Unsloth can still come first."""
    from dpo_study.runtime import plans

    manifest = read_manifest(kwargs["manifest"]) if kwargs.get("manifest") else None
    model_settings, training = kwargs.get("model_settings"), kwargs.get("training")
    return plans.plan_job(manifest, training and as_settings(TrainingSettings, training),
                          model_settings and as_settings(ModelSettings, model_settings))


def worker_key(kwargs: dict) -> dict:
    """What names the worker a job goes to, with its slot and code version: the base model's folder
    (its manifest's path). Read without torch: the job's plan (its training backend, and so whether
    Unsloth must patch the process) is made in the worker, which has torch and CUDA up already; a
    worker whose process does not suit the plan hands the job to a fresh one (``worker_process``).
    Planning on the job's side cost a training job ~3 s on an H100 (torch's import, CUDA's start)."""
    manifest = read_manifest(kwargs["manifest"]) if kwargs.get("manifest") else None
    return {"model": manifest and str(manifest["path"])}


def stage_arguments(func, kwargs: dict, plan=None) -> dict:
    """The job's arguments as the stage declares them: ``threads`` and ``plan`` only for a stage that
    takes them, and a settings group (plain values in a rule's params) as the class its parameter is
    annotated with (``training: TrainingSettings``)."""
    parameters = inspect.signature(func).parameters
    hints = typing.get_type_hints(func)
    arguments = {}
    for name, value in kwargs.items():
        if name == "threads" and name not in parameters:
            continue
        group = settings_class(hints.get(name))
        arguments[name] = as_settings(group, value) if group is not None else value
    if plan is not None and "plan" in parameters:
        arguments["plan"] = plan
    return arguments


@contextmanager
def job_log(log_path: str):
    """The job's output into its log: the file descriptors (also C extensions' output), Python's
    streams and logging; as they were afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log_path, "w", buffering=1) as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
            with redirect_stdout(log_file), redirect_stderr(log_file):
                logging.basicConfig(stream=log_file, level=logging.INFO, force=True, format=LOG_FORMAT)
                try:
                    yield
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True, format=LOG_FORMAT)


def run_stage(stage: str, kwargs: dict, log_path: str, plan=None, *, plan_here: bool = False,
              note: str | None = None) -> None:
    """Run ``stage`` (``"module:function"``) with the job's ``kwargs``, its output in ``log_path``.

    ``plan``: the job's plan, when the caller has it (a GPU worker plans a job to choose its process);
    ``plan_here``: plan it now (a GPU job). A stage that raises has its traceback in the log, and raises.
    """
    with job_log(log_path):
        if note:
            log.info("%s", note)
        try:
            if plan_here:
                plan = job_plan(kwargs)
            if plan is not None and plan.unsloth:
                from dpo_study.runtime.backends import import_unsloth

                import_unsloth()
            func = resolve(stage)
            func(**stage_arguments(func, kwargs, plan))
        except BaseException:  # also SystemExit/KeyboardInterrupt from a stage: into its log
            traceback.print_exc()
            raise
