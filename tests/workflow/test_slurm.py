"""The study on a real SLURM cluster through profiles/slurm (CI starts one with .ci/slurm-cluster.sh).

The SLURM runs are skipped when no cluster answers, and fail instead when DPO_STUDY_CI=1: CI
starts a cluster, so a missing one means that CI's set-up is broken, not that there is nothing to test.
"""

import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from snakemake_helpers import reuse_outputs, snakemake, workdir_with_config

PROFILE = REPO / "profiles" / "slurm"
DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
# Two small experiments on a quickly built demo model, with short answers: these tests are about
# where jobs run and what survives a failure, not about what the model learns or says.
STUDY = {
    "experiments": [
        {"name": "ratio_0", "support_ratio": 0, "data_size": 10, "num_epoch": 1},
        {"name": "ratio_1", "support_ratio": 1, "data_size": 10, "num_epoch": 1},
    ],
    "questions": [],
    "demo_model": {"seed": 1, "steps": 30},
    # The test prompts alone: each prompt set adds four SLURM jobs per experiment, and what a set
    # changes (answers and judgements per set) is checked by the local pipeline tests.
    "data": {**DEMO["data"], "probes": []},
    "generation": {"max_new_tokens": 16},
    "judge": {"use": ["ngram"]},  # the llm judge would add GPU jobs, not checks
}
PROMPT_SETS = ["test"]
# The study's tables and submissions. The report's rules are ordinary jobs like `tables`: left
# out, they would add a SLURM job each to every run here and nothing that these tests check.
TARGETS = ("results/tables/experiments.csv", "results/tables/responses.csv",
           *(f"results/submissions/{e['name']}.json" for e in STUDY["experiments"]))
# Without slurmdbd there is no sacct: poll squeue instead (the CI cluster keeps finished jobs
# there for an hour), and soon. Keep every job's SLURM log, to check where each job ran.
SLURM_ARGS = ("--workflow-profile", str(PROFILE), "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs")
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$", re.M)
JOB_BLOCK = re.compile(r"^(localrule|rule) (\w+):\n((?:    .*\n)+)", re.M)


@dataclass(frozen=True)
class Job:
    rule: str
    local: bool
    resources: dict
    wildcards: str

    @property
    def gpus(self) -> int:
        return int(self.resources.get("gpu", 0))


@dataclass(frozen=True)
class Submission:
    jobid: int  # Snakemake's
    slurm_jobid: str
    log: Path


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def jobs(self) -> dict[int, Job]:
        """Every job Snakemake started (or submitted), by its job id."""
        jobs = {}
        for kind, rule, body in JOB_BLOCK.findall(self.output):
            fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
            resources = dict(item.split("=", 1) for item in fields.get("resources", "").split(", ") if item)
            jobs[int(fields["jobid"])] = Job(rule, kind == "localrule", resources, fields.get("wildcards", ""))
        return jobs

    @property
    def submissions(self) -> list[Submission]:
        return [Submission(int(j), s, Path(log)) for j, s, log in SUBMITTED.findall(self.output)]


def slurm_job(slurm_jobid: str) -> dict:
    """What slurmctld knows of a job (it keeps finished jobs for MinJobAge)."""
    line = subprocess.run(["scontrol", "-o", "show", "job", slurm_jobid], capture_output=True, text=True,
                          check=True).stdout
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", line))


def cluster_problem() -> str | None:
    """Why no SLURM cluster answers here, or None when one does."""
    config = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    if shutil.which("sbatch") is None:
        return "no SLURM client (sbatch) on PATH"
    if not Path(config).exists():  # the clients would wait a minute for it
        return f"no SLURM config at {config}"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "sinfo got no answer within 60 s"
    if result.returncode != 0:
        return f"sinfo failed: {result.stderr.strip()}"
    if not any(state.startswith(("idle", "mix", "alloc")) for state in result.stdout.split()):
        return f"no node takes jobs (node states: {result.stdout.split()})"
    return None


def study_config(workdir: Path, study: dict) -> Path:
    """``study`` over config/demo.yaml in ``workdir``."""
    return workdir_with_config(workdir, study)


def dry_run_jobs(workdir, config, *args) -> dict[int, Job]:
    result = snakemake(workdir, config, "-n", *args, execution=())
    return Run(result.returncode, result.stdout + result.stderr).jobs


def test_profile_sends_gpu_rules_to_the_gpu_partition(tmp_path, monkeypatch):
    """Partitions and account come from the environment; every job has a time and memory limit."""
    monkeypatch.setenv("DPO_SLURM_GPU_PARTITION", "test-gpu")
    monkeypatch.setenv("DPO_SLURM_PARTITION", "test-cpu")
    monkeypatch.setenv("DPO_SLURM_ACCOUNT", "test-account")
    # the demo's own judges: the llm judge on the base model makes the judge jobs GPU jobs; an
    # on_policy experiment adds the base model's answers to the training prompts (generate_base_train)
    demo_judges = {key: value for key, value in STUDY.items() if key != "judge"}
    demo_judges["experiments"] = [*STUDY["experiments"],
                                  {"name": "on_policy", "strategy": "on_policy", "data_size": 10, "num_epoch": 1}]
    jobs = dry_run_jobs(tmp_path, study_config(tmp_path, demo_judges), "--workflow-profile", str(PROFILE))
    gpu_rules = {job.rule for job in jobs.values() if job.gpus}
    assert {"train_adapter", "generate_base", "generate_base_train", "generate_aligned", "train_judge",
            "judge_base", "judge_aligned"} <= gpu_rules
    for job in jobs.values():
        if job.gpus:
            assert job.resources["slurm_partition"] == "test-gpu", job
            assert int(job.resources["mem_mb"]) == 16000, job  # the profile's GPU limits, not the defaults
        elif "gpu" not in job.resources:  # (a rule whose gpu is 0 for this config may go either way)
            assert job.resources["slurm_partition"] == "test-cpu", job
        assert job.resources["slurm_account"] == "test-account", job
        assert int(job.resources["runtime"]) > 0 and int(job.resources["mem_mb"]) > 0, job


def test_profile_defaults_leave_partition_and_account_to_the_cluster(tmp_path, monkeypatch):
    for name in ("DPO_SLURM_GPU_PARTITION", "DPO_SLURM_PARTITION", "DPO_SLURM_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    jobs = dry_run_jobs(tmp_path, study_config(tmp_path, STUDY), "--workflow-profile", str(PROFILE))
    for job in jobs.values():
        assert "slurm_account" not in job.resources
        if job.gpus or "gpu" not in job.resources:
            assert job.resources.get("slurm_partition") == ("gpu" if job.gpus else None), job


def test_every_jobs_slurm_log_folder_name_fits_a_path_segment(tmp_path):
    """The SLURM plugin puts each job's log in a folder named by its wildcards joined with "_": a
    wildcard that spans a run's path (the settings keys and the experiment's key) made it too long
    (OSError: File name too long), and the job was never submitted."""
    jobs = dry_run_jobs(tmp_path, workdir_with_config(tmp_path, {}), "--workflow-profile", str(PROFILE))
    assert {"train_adapter", "generate_aligned", "judge_base", "judge_aligned"} <= {j.rule for j in jobs.values()}
    for job in jobs.values():
        values = [item.split("=", 1)[1] for item in re.split(r", (?=\w+=)", job.wildcards) if item]
        assert len("_".join(values)) <= 200, job  # 255 is the limit; keys may grow by a field or two


# ---- against the cluster --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem and os.environ.get("DPO_STUDY_CI") == "1":
        pytest.fail(f"DPO_STUDY_CI=1 but no SLURM cluster answers: {problem} (.ci/run starts one)")
    if problem:
        pytest.skip(f"no SLURM cluster: {problem} (start one with .ci/slurm-cluster.sh start)")


@pytest.fixture(scope="module")
def local_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    snakemake(workdir, study_config(workdir, STUDY), *TARGETS)
    return workdir


@dataclass
class SlurmStudy:
    workdir: Path
    failing: Run  # ratio_1's training input broken: its job fails on every attempt
    fixed: Run  # the same study again once the input is repaired
    broken_key: str
    kept_before: dict  # mtimes of the finished outputs, after the failing run
    kept_after: dict


def finished_outputs(workdir: Path) -> dict:
    """Outputs of everything but ratio_1's training and what follows it (which the failing run cannot finish)."""
    results = workdir / "results"
    paths = [results / "submissions/ratio_0.json", *results.glob("demo-*/model-*/base/**/*"),
             *(results / "models").rglob("*"), *(results / "judge").rglob("*")]
    paths += [p for run in results.glob("demo-*/model-*/runs/training-*/*") if "support_ratio~0_" in run.name
              for p in run.rglob("*")]
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in paths if p.is_file()}


@pytest.fixture(scope="module")
def slurm_study(cluster, local_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    config = study_config(workdir, STUDY)
    # The local run's demo model, with Snakemake's record of it (so current here too): building it
    # on the cluster would be one more job before all others, and nothing these tests check.
    assert reuse_outputs(local_run, workdir, config, only=("results/models/",))
    # ratio_1's preference pairs as a file that is there, newer than its inputs (so not rebuilt),
    # and not JSON: its training job fails on the cluster, however often it is tried.
    (pairs,) = [p.name for p in (local_run / "results/pairs").glob("*.jsonl") if "support_ratio~1_" in p.name]
    broken = workdir / "results/pairs" / pairs
    broken.parent.mkdir(parents=True)
    broken.write_text("this line is not JSON\n")

    def run():
        result = snakemake(workdir, config, *SLURM_ARGS, *TARGETS, check=False, execution=())
        return Run(result.returncode, result.stdout + result.stderr)

    failing = run()
    kept_before = finished_outputs(workdir)
    broken.unlink()
    fixed = run()
    return SlurmStudy(workdir, failing, fixed, pairs.removesuffix(".jsonl"), kept_before, finished_outputs(workdir))


@pytest.mark.slow
def test_every_job_runs_as_a_slurm_job(slurm_study):
    for run in (slurm_study.failing, slurm_study.fixed):
        jobs = run.jobs
        assert {job.rule for job in jobs.values() if job.local} <= {"all"}
        submitted = {s.jobid for s in run.submissions}
        assert submitted and submitted == {jobid for jobid, job in jobs.items() if not job.local}, run.output[-3000:]
        assert any(jobs[jobid].gpus for jobid in submitted)
        for submission in run.submissions:
            job = jobs[submission.jobid]
            slurm = slurm_job(submission.slurm_jobid)
            assert slurm["Comment"].startswith(f"rule_{job.rule}"), slurm
            assert (slurm.get("TresPerJob") == "gres:gpu:1") == (job.gpus > 0), slurm
            assert slurm["NumCPUs"] == job.resources["cpus_per_task"], slurm
            # the plugin's per-job log: the job step's own Snakemake ran exactly this rule
            assert f"rule {job.rule}:" in submission.log.read_text(), submission


@pytest.mark.slow
def test_tables_equal_a_local_run(local_run, slurm_study):
    """Training is deterministic on a CPU for one seed; only timings may differ, and git_commit, which
    records the code a run used (an edit of the checkout while the tests run marks it "+dirty")."""
    assert slurm_study.fixed.returncode == 0, slurm_study.fixed.output[-5000:]
    for table in ("experiments", "responses"):
        on_slurm, local = (pd.read_csv(w / f"results/tables/{table}.csv") for w in (slurm_study.workdir, local_run))
        not_results = [c for c in local.columns if c.endswith("_seconds") or c == "git_commit"]
        pd.testing.assert_frame_equal(on_slurm.drop(columns=not_results), local.drop(columns=not_results))


@pytest.mark.slow
def test_failing_job_is_retried_and_reported_with_its_logs(slurm_study):
    run = slurm_study.failing
    assert run.returncode != 0
    jobs = run.jobs
    failed = [s for s in run.submissions if slurm_job(s.slurm_jobid)["JobState"] == "FAILED"]
    assert {jobs[s.jobid].rule for s in failed} == {"train_adapter"}
    assert all("support_ratio~1_" in jobs[s.jobid].wildcards for s in failed)
    retries = yaml.safe_load((PROFILE / "config.yaml").read_text())["retries"]
    # one Snakemake job, tried once and then `retries` times more, each try a SLURM job that failed
    assert len({s.jobid for s in failed}) == 1
    assert failed == [s for s in run.submissions if s.jobid == failed[0].jobid]
    assert len(failed) == retries + 1
    # each failure names the rule's log and that try's SLURM log, which holds the job's traceback
    errors = re.findall(r"^Error in rule train_adapter:\n(?:    .*\n)+", run.output, re.M)
    assert len(errors) == len(failed), errors
    for error, submission in zip(errors, failed):
        assert "log: results/logs/train_adapter/" in error and str(submission.log) in error, error
        # the project's own message: which file is broken and how to rebuild it
        assert f"CorruptArtifact: results/pairs/{slurm_study.broken_key}.jsonl: line 1 is not a JSON row" \
            in submission.log.read_text(), submission
    # keep-going: the other experiment finished despite the failure
    assert (slurm_study.workdir / "results/submissions/ratio_0.json").is_file()


@pytest.mark.slow
def test_rerun_runs_only_what_did_not_finish(slurm_study):
    failing, fixed = slurm_study.failing, slurm_study.fixed
    finished = {(failing.jobs[s.jobid].rule, failing.jobs[s.jobid].wildcards) for s in failing.submissions
                if slurm_job(s.slurm_jobid)["JobState"] == "COMPLETED"}
    rerun = {(fixed.jobs[s.jobid].rule, fixed.jobs[s.jobid].wildcards) for s in fixed.submissions}
    assert finished and not finished & rerun, finished & rerun
    # ratio_1 from its repaired pairs on, each job once (its answers once per prompt set), and the
    # tables over both experiments
    reruns = [(fixed.jobs[s.jobid].rule, fixed.jobs[s.jobid].wildcards) for s in fixed.submissions]
    assert len(reruns) == len(rerun), Counter(reruns)
    rules = Counter(rule for rule, _ in rerun)
    assert {"prepare_pairs", "train_adapter", "generate_aligned", "judge_aligned", "tables"} <= set(rules), rules
    assert rules["train_adapter"] == 1 and rules["generate_aligned"] == len(PROMPT_SETS), rules
    assert all("support_ratio~1_" in w or w == "experiment=ratio_1" for _, w in rerun if w), rerun
    assert slurm_study.kept_before and slurm_study.kept_after == slurm_study.kept_before
