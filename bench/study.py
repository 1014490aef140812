"""The study-level benchmark: the HW7 study of config/config.yaml through snakemake, up to three ways.

On a GPU machine (no download: bench/random_model.py builds a random-weight model of Llama-3-8B's shape):

    python3 bench/study.py --work /tmp/study --json $OUT/study.json --ways worker,default

The study is config/config.yaml (4 experiments + the base model, the 10 test prompts + 66 probes,
implicit reward) with judges ngram + llm, run as a user runs it
(``snakemake all --cores 16 --resources gpu=1 --configfile config/config.yaml overlay.yaml``):

- ``worker``: the project's default (recipe fast), GPU jobs in the resident worker (software.gpu_worker on);
- ``default``: the same with one process per job (software.gpu_worker off), as before the worker;
- ``shared_gpu``: the worker way with two GPU jobs at once on each GPU (``software.jobs_per_gpu: 2``,
  ``--resources gpu=2`` on one GPU), each share in a worker of its own;
- ``worker_liger``: the worker way with Liger's kernels in training (``training.use_liger_kernel: true``;
  issue 20 item 5: a kernel's speed-up measured where the user waits, in the whole study);
- ``worker_compile`` / ``worker_graphs``: the worker way with the training step compiled
  (``training.torch_compile_mode``: ``default``, or ``reduce-overhead``, which also captures CUDA graphs;
  issue 20 item 5, each training job paying its own compilation);
- ``notebook``: the notebook's way (recipe homework, Unsloth, one process per job, generation one
  prompt at a time with transformers' generate). Too slow to run whole within a device call, it
  runs on a sample (the first experiment, the 10 test prompts); the whole study's time is then
  estimated: per rule, the sample's job time (a generation job's decoding scaled to 76 prompts)
  times the rule's job count in the full study, plus what the default run spent outside GPU jobs.

Per way: study wall time; GPU-busy fraction (``nvidia-smi`` sampled every 100 ms: the mean of its
utilisation over the run); each GPU job's wall time (from its process start, imports included) and
its overhead (wall time minus the GPU-busy seconds inside it); peak GPU memory; the training
loop's MFU. ``--tiny`` runs a tiny model and a one-experiment study: a smoke test on a CPU.
``--incremental`` (issue 20) then runs, in the same call, after the ways' full studies: a
no-change re-run, one experiment added (``ADDED``), and the same full study in a fresh results folder
with the worker warm (headline ``nochange_s``, ``add_one_s``, ``warm_study_s``); every run has its
``phases`` (before the first job, each rule's jobs, after the last).
``--profile-step STEP`` (``full``: each way's study, or an incremental step) runs that step's worker jobs
under cProfile (``DPO_STUDY_PROFILE_JOBS``) and adds ``profile``: per stage, its jobs' profiled
seconds and the functions that took most of them (cumulative), to say where a job's time goes
besides the GPU's; the step's own timings then include the profiler's cost.
Before the first way, ``prepared``: the installed libraries' bytecode compiled and, on a GPU, CUDA's
first use, so that the ways compared side by side start alike (``prepare_machine``).
``--merge A.json B.json`` joins results of several calls into one file with the headline keys.
A default run cut by ``--time-limit`` (a device call's ten minutes) is completed by an estimate
(``estimate_unfinished_default``), flagged ``default_study_is_estimate``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from dpo_study.runtime.worker import PROFILE_VARIABLE  # noqa: E402 (the package's folder is on the path now)

# The worker way with training settings of issue 20 item 5: (the headline keys' prefix, the settings).
TRAINING_WAYS = {"worker_liger": ("liger", {"use_liger_kernel": True}),
                 "worker_compile": ("compile", {"torch_compile_mode": "default"}),
                 "worker_graphs": ("graphs", {"torch_compile_mode": "reduce-overhead"})}
WAYS = ("worker", "default", "notebook", "shared_gpu", *TRAINING_WAYS)
JOBS_PER_GPU = {"shared_gpu": 2}  # the way that runs two GPU jobs at once on each GPU (software.jobs_per_gpu)
H200_BF16_DENSE_TFLOPS = 989.4  # datasheet, SXM, dense
TIMING_FILE = "job_times.jsonl"


def say(text: str) -> None:
    print(text, flush=True)


def overlay(way: str, model_dir: Path, tiny: bool, on_gpu: bool, encoder: Path | None = None,
            experiments: int | None = None) -> dict:
    """The config overlay of one way (on top of config/config.yaml); ``encoder``: the relevance
    measure's sentence encoder, where the bundled one is not installed; ``experiments``: only the
    study's first N experiments (a short device call)."""
    config = {"model": {"name": str(model_dir)},
              "judge": {"use": ["ngram", "llm"], "llm": {"backend": "base_model"},
                        **({"embedding": {"model_path": str(encoder)}} if encoder else {})},
              "software": {"env": "gpu", "gpu_worker": "on" if way in ("worker", "shared_gpu", *TRAINING_WAYS) else "off",
                           "jobs_per_gpu": JOBS_PER_GPU.get(way, 1)}}
    if way in TRAINING_WAYS:
        config["training"] = dict(TRAINING_WAYS[way][1])
    if way == "notebook":
        config["training"] = {"recipe": "homework", **({"backend": "unsloth"} if on_gpu else {})}
        config["generation"] = {"batch_size": 1, "decode": "plain"}  # the notebook's per-prompt loop
    if way == "notebook" or tiny:  # the sample: one experiment, the test prompts
        config["experiments"] = [{"name": "homework_default"}]
        config["questions"] = []
        config["data"] = {"probes": []}
    if tiny:
        config["defaults"] = {"num_epoch": 1, "data_size": 10}
    if experiments and way != "notebook" and not tiny:  # the first N of the study's experiments, their questions
        study = yaml.safe_load((REPO / "config/config.yaml").read_text())
        config["experiments"] = study["experiments"][:experiments]
        names = {e["name"] for e in config["experiments"]}
        config["questions"] = [q for q in study["questions"] if {q["a"], q["b"]} <= names]
    return config


def host_cpu() -> str:
    """The host's CPU model and count: the GPU lane's jobs are host-bound, so two machines with the same
    GPU kind can differ by their CPUs (compare only figures of one machine)."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} logical CPUs"


def prepare_machine(cores: int, on_gpu: bool) -> dict:
    """Before the first timed way, what only the first would otherwise pay: the installed libraries'
    bytecode (an install made with pip's ``--no-compile``, as on the device, leaves it to the first
    import: on 2026-12-05 the first of two ways' first training job took 52.9 s against the second's
    30.9 s) and, on a GPU, the machine's first CUDA use (a bf16 matmul and its backward, in a process of
    its own so that this one holds no GPU memory)."""
    folders = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    folders |= {entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry}
    folders = sorted(folder for folder in folders if Path(folder).is_dir())
    start = time.perf_counter()
    # A library's file that does not compile (test data, another Python's syntax) is not imported either.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", str(cores), *folders],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prepared = {"bytecode_folders": folders, "bytecode_s": round(time.perf_counter() - start, 1)}
    if on_gpu:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch; x = torch.randn(4096, 4096, device='cuda', "
                        "dtype=torch.bfloat16, requires_grad=True); (x @ x).sum().backward(); "
                        "torch.cuda.synchronize()"], check=True)
        prepared["cuda_warmup_s"] = round(time.perf_counter() - start, 1)
    return prepared


class GpuSampler:
    """``nvidia-smi`` every 100 ms: (time, utilisation %, memory MiB) rows; nothing on a machine without it."""

    def __init__(self, path: Path):
        self.path, self.process = path, None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.handle = open(self.path, "w")
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "100"], stdout=subprocess.PIPE, text=True)
            self.rows = []

            def read():
                for line in self.process.stdout:
                    parts = [p.strip() for p in line.split(",")]
                    if len(parts) == 2 and parts[0].isdigit():
                        self.rows.append((time.time(), float(parts[0]), float(parts[1])))

            import threading

            self.thread = threading.Thread(target=read, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.process:
            self.process.terminate()
            self.process.wait()
            self.thread.join(timeout=5)
            self.path.write_text("\n".join(",".join(map(str, r)) for r in self.rows))

    def samples(self) -> list[tuple[float, float, float]]:
        return getattr(self, "rows", [])


def busy_seconds(samples, start: float, end: float) -> float | None:
    """GPU-busy seconds in [start, end]: utilisation x sample interval, summed."""
    if len(samples) < 2:
        return None
    total = 0.0
    for (t0, util, _), (t1, _, _) in zip(samples, samples[1:]):
        overlap = min(t1, end) - max(t0, start)
        if overlap > 0:
            total += overlap * util / 100
    return total


def profile_summary(folder: Path, top: int = 20) -> dict:
    """Per stage function (the .prof files of DPO_STUDY_PROFILE_JOBS): its jobs, their profiled
    seconds, and the ``top`` functions by cumulative seconds and by their own seconds over those jobs."""
    import pstats

    by_stage: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.prof")):
        by_stage.setdefault(path.stem.split("-", 2)[2], []).append(path)
    summary = {}
    for stage, paths in by_stage.items():
        stats = pstats.Stats(*map(str, paths))

        def ranked(column: int) -> list[dict]:
            rows = sorted(stats.stats.items(), key=lambda item: item[1][column], reverse=True)[:top]
            return [{"function": f"{Path(file).name}:{line}({name})", "seconds": round(figures[column], 3),
                     "calls": figures[1]} for (file, line, name), figures in rows]

        summary[stage] = {"jobs": len(paths), "seconds": round(stats.total_tt, 2),
                          "top_cumulative": ranked(3), "top_self": ranked(2)}
    return summary


def run_way(way: str, work: Path, model_dir: Path, args, on_gpu: bool, folder: Path | None = None,
            config: dict | None = None, locks: Path | None = None, fresh: bool = True, step: str = "full") -> dict:
    """One snakemake run of ``way`` in ``folder`` (default ``work/way``, made afresh unless ``fresh``
    is False); ``config``: the overlay (default the way's); ``locks``: the workers' folder (default
    the run folder's own), so that a later run can find a warm worker."""
    folder = folder or work / way
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name in ("data", "config"):
            (folder / name).symlink_to(REPO / name)
    config = config or overlay(way, model_dir, args.tiny, on_gpu, args.encoder, args.experiments)
    (folder / "overlay.yaml").write_text(yaml.safe_dump(config))
    times = folder / TIMING_FILE
    times.unlink(missing_ok=True)  # this run's jobs only
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "UNSLOTH_DISABLE_STATISTICS": "1",
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "DPO_STUDY_JOB_TIMES": str(times),
           "DPO_STUDY_GPU_LOCKS": str(locks or folder / "locks"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}
    profiles = folder / f"profiles-{step}"
    if args.profile_step == step:
        shutil.rmtree(profiles, ignore_errors=True)
        env[PROFILE_VARIABLE] = str(profiles)
    command = [sys.executable, "-m", "snakemake", "all", "-s", str(REPO / "Snakefile"), "-d", str(folder),
               "--cores", str(args.cores), "--keep-going", "--resources", f"gpu={config['software']['jobs_per_gpu']}",
               "--configfile", str(REPO / "config/config.yaml"), str(folder / "overlay.yaml")]
    say(f"\n===== {way}: {' '.join(command)}")
    with GpuSampler(folder / "gpu_samples.csv") as sampler:
        start = time.time()
        with open(folder / "snakemake.log", "w") as log:
            try:
                code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                      timeout=max(30, args.deadline - time.monotonic())).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        end = time.time()
    say(f"===== {way}: exit {code} after {end - start:.1f} s")
    if code != 0:
        say((folder / "snakemake.log").read_text()[-3000:])
    result = figures(way, folder, start, end, code, sampler.samples(), on_gpu)
    if args.profile_step == step:
        result["profile"] = profile_summary(profiles)
    return result


ADDED = {"name": "added_learning_rate_5e-5", "learning_rate": 5.0e-5}  # the experiment add_one adds


def incremental(work: Path, model_dir: Path, args, on_gpu: bool, report: dict) -> None:
    """After the worker way's full study, in one call (issue 20): a no-change re-run, one experiment
    added, then the same full study in a fresh results folder, each finding the worker warm. The
    JSON is written after each step: a device call cut short keeps the steps it finished."""
    folder, locks = work / "worker", work / "worker" / "locks"
    config = overlay("worker", model_dir, args.tiny, on_gpu, args.encoder, args.experiments)
    steps = report.setdefault("incremental", {})
    experiments = config.get("experiments") or yaml.safe_load((REPO / "config/config.yaml").read_text())["experiments"]
    added = {**config, "experiments": [*experiments, ADDED]}
    for step, step_folder, step_config in (("nochange", folder, config), ("add_one", folder, added),
                                           ("warm_study", work / "worker-warm", config)):
        steps[step] = run_way("worker", work, model_dir, args, on_gpu, step_folder, step_config, locks,
                              fresh=step == "warm_study", step=step)
        if args.json:
            args.json.write_text(json.dumps({**report, **headline(report)}, indent=1) + "\n")
    subprocess.run([sys.executable, "-m", "dpo_study.runtime.worker", "stop"], cwd=REPO / "src", check=False,
                   env={**os.environ, "DPO_STUDY_GPU_LOCKS": str(locks)})


def phases(folder: Path, start: float, end: float) -> dict:
    """Where a run's time went: before its first job, each rule's jobs (summed wall time, count), the
    GPU lane (its first job's start to its last job's end), the jobs after it (the report side), and
    after the last job."""
    path = folder / TIMING_FILE
    jobs = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if not jobs:
        return {"before_first_job_s": round(end - start, 1), "jobs_s_by_rule": {}, "after_last_job_s": 0.0}
    begin = [j["process_start"] or j["call_start"] for j in jobs]
    by_rule: dict = {}
    for job, first in zip(jobs, begin):
        entry = by_rule.setdefault(job["rule"], {"jobs": 0, "seconds": 0.0})
        entry["jobs"] += 1
        entry["seconds"] = round(entry["seconds"] + job["end"] - first, 2)
    last_end = max(j["end"] for j in jobs)
    lane = [(first, job["end"]) for job, first in zip(jobs, begin) if job["gpu_job"]]
    gpu_lane = {}
    if lane:
        gpu_lane = {"gpu_lane_s": round(max(e for _, e in lane) - min(b for b, _ in lane), 1),
                    "after_gpu_lane_s": round(last_end - max(e for _, e in lane), 1)}
    return {"before_first_job_s": round(min(begin) - start, 1), "jobs_s_by_rule": by_rule, **gpu_lane,
            "after_last_job_s": round(end - last_end, 1)}


def figures(way: str, folder: Path, start: float, end: float, code, samples, on_gpu: bool) -> dict:
    jobs = [json.loads(line) for line in (folder / TIMING_FILE).read_text().splitlines()] \
        if (folder / TIMING_FILE).exists() else []
    gpu_jobs = []
    for job in jobs:
        if not job["gpu_job"]:
            continue
        begin = job["process_start"] or job["call_start"]
        busy = busy_seconds(samples, begin, job["end"])
        gpu_jobs.append({"rule": job["rule"], "wall_s": round(job["end"] - begin, 2),
                         "gpu_busy_s": None if busy is None else round(busy, 2),
                         "overhead_s": None if busy is None else round(job["end"] - begin - busy, 2),
                         "worker_pid": job.get("worker_pid"), "worker_seconds": job.get("worker_seconds"),
                         "worker_gc_s": job.get("worker_gc_seconds"),
                         # Outside the worker: the job's process up to the bridge (Snakemake's script start,
                         # imports), the GPU claim, and the rest (handing the job over and back).
                         "to_call_s": round(job["call_start"] - begin, 3),
                         "claim_s": job.get("claim_seconds"),
                         "handoff_s": None if job.get("worker_seconds") is None else round(
                             job["end"] - job["call_start"] - (job.get("claim_seconds") or 0) - job["worker_seconds"], 3)})
    study_busy = busy_seconds(samples, start, end)
    result = {
        "way": way, "exit": code, "study_s": round(end - start, 1), "jobs": len(jobs), "gpu_jobs": gpu_jobs,
        "gpu_busy": None if study_busy is None else round(study_busy / (end - start), 3),
        "gpu_busy_s": None if study_busy is None else round(study_busy, 1),
        "peak_gpu_memory_gib": round(max(r[2] for r in samples) / 1024, 1) if samples else None,
        "workers": sorted({j["worker_pid"] for j in gpu_jobs if j["worker_pid"]}),
        # Python's garbage collections inside the workers' jobs (runtime.worker_process.JobCollections)
        "worker_gc_s_by_lane": {lane: round(sum(j.get("worker_gc_seconds") or 0 for j in jobs
                                                if j.get("worker") and j["gpu_job"] == (lane == "gpu")), 2)
                                for lane in ("gpu", "cpu")},
    }
    overheads = [j["overhead_s"] for j in gpu_jobs if j["overhead_s"] is not None]
    if overheads:
        result.update(job_overhead_sum_s=round(sum(overheads), 1),
                      job_overhead_mean_s=round(sum(overheads) / len(overheads), 2))
    if gpu_jobs:  # the GPU jobs' time outside the worker, summed by part
        result["gpu_jobs_outside_worker_s"] = {part: round(sum(j[part] or 0 for j in gpu_jobs), 2)
                                               for part in ("to_call_s", "claim_s", "handoff_s")}
    per_rule = {}
    for job in gpu_jobs:
        per_rule.setdefault(job["rule"], []).append(job["wall_s"])
    result["gpu_job_wall_s_by_rule"] = {rule: round(sum(w) / len(w), 2) for rule, w in per_rule.items()}
    result["gpu_job_count_by_rule"] = {rule: len(w) for rule, w in per_rule.items()}
    result["phases"] = phases(folder, start, end)
    result["training"] = training_figures(folder, on_gpu)
    result["generation"] = generation_figures(folder)
    return result


def training_figures(folder: Path, on_gpu: bool) -> list[dict]:
    """Per training job (in the order they ran): the loop's speed and MFU, from its summary and step log."""
    from h200 import matmul_params, train_figures

    rows = []
    for summary_path in folder.glob("results/*/*/runs/*/*/train_summary.json"):  # <model>/<settings>/runs/<training>/<key>
        summary = json.loads(summary_path.read_text())
        row = {"run": summary_path.parent.name, "started_at": summary["started_at"],
               "train_seconds": summary["train_seconds"], "tokens": summary["tokens"],
               "final_loss": summary["final_loss"], "plan": summary["plan"],
               **{k: summary.get(k) for k in ("load_seconds", "setup_seconds", "reference_pass_seconds", "finished_at",
                                               "peak_memory_gib")}}  # the job's own peak, beside plan's estimate
        if on_gpu:
            model_dir = Path(json.loads(next(folder.glob("results/models/*.json")).read_text())["path"])
            step = {"spawned_at": summary["started_at"], "wall_s": 0}
            loop = train_figures(summary, summary_path.parent / "train_log.csv", step, matmul_params(model_dir),
                                 H200_BF16_DENSE_TFLOPS)
            row.update({k: loop[k] for k in ("loop_tok_s", "loop_mfu", "steady_loop_mfu", "steady_step_s")})
        rows.append(row)
    return sorted(rows, key=lambda r: r["started_at"])


def generation_figures(folder: Path) -> list[dict]:
    """Per generation job: prompts, tokens and decoding seconds, from its log line."""
    import re

    rows = []
    for log in folder.glob("results/logs/generate_*"):
        for path in ([log] if log.is_file() else log.glob("*.log")):
            match = re.search(r"generated (\d+) answers, (\d+) tokens in ([\d.]+) s", path.read_text())
            if match:
                rows.append({"log": path.name, "answers": int(match[1]), "tokens": int(match[2]),
                             "seconds": float(match[3])})
    return rows


def estimate_notebook(sample: dict, default: dict, full_prompts: int) -> dict:
    """The whole study the notebook's way, from its sample and the full study's job counts (see module doc)."""
    per_rule = dict(sample["gpu_job_wall_s_by_rule"])
    generation = sample["generation"]
    if generation:
        answers = sum(g["answers"] for g in generation) / len(generation)
        seconds = sum(g["seconds"] for g in generation) / len(generation)
        for rule in ("generate_base", "generate_aligned"):
            if rule in per_rule:
                per_rule[rule] = per_rule[rule] + seconds * (full_prompts / answers - 1)
    gpu_s = sum(per_rule.get(rule, 0) * count for rule, count in default["gpu_job_count_by_rule"].items())
    default_gpu_s = sum(j["wall_s"] for j in default["gpu_jobs"])
    outside = max(0.0, default["study_s"] - default_gpu_s)
    return {"estimated_study_s": round(gpu_s + outside, 1), "estimated_gpu_jobs_s": round(gpu_s, 1),
            "outside_gpu_jobs_s (from the default run)": round(outside, 1),
            "job_wall_s_by_rule (generation scaled)": {k: round(v, 1) for k, v in per_rule.items()},
            "full_prompts": full_prompts}


def notebook_from_single_jobs(default: dict, single: dict, full_prompts: int = 76, new_tokens: int = 128) -> dict:
    """The notebook's way for the whole study, from bench/h200.py's single-job figures (when no sample ran).

    Each training job takes the notebook recipe's measured job wall time; each generation job the
    per-prompt loop's fixed cost (its job wall time minus its decoding) plus ``full_prompts`` answers
    of ``new_tokens`` tokens (a random model never stops early) at its measured rate; the other rules
    (judges, implicit reward: the recipe does not change them) and the time outside GPU jobs as in
    the default run.
    """
    loop = single["gen_loop"]
    generation = (loop["wall_s"] - loop["seconds"]) + full_prompts * new_tokens / loop["tok_s"]
    per_rule = {**default["gpu_job_wall_s_by_rule"], "train_adapter": single["train_homework"]["wall_s"],
                "generate_base": generation, "generate_aligned": generation}
    gpu_s = sum(per_rule[rule] * count for rule, count in default["gpu_job_count_by_rule"].items())
    outside = max(0.0, default["study_s"] - sum(j["wall_s"] for j in default["gpu_jobs"]))
    return {"estimated_study_s": round(gpu_s + outside, 1), "estimated_gpu_jobs_s": round(gpu_s, 1),
            "outside_gpu_jobs_s (from the default run)": round(outside, 1),
            "job_wall_s_by_rule": {k: round(v, 1) for k, v in per_rule.items()},
            "from": f"bench/h200.py's run of {single['date']}: train_homework.wall_s, gen_loop (wall_s, seconds, tok_s)",
            "full_prompts": full_prompts}


def estimate_unfinished_default(default: dict, worker: dict) -> dict:
    """The whole study one process per job, from a default run that hit the time limit: its GPU jobs
    as measured; each GPU job it did not reach (the worker run's jobs, rule by rule) at the default
    run's mean for that rule, or at its shortest GPU job for a rule it never reached (a low
    estimate); plus the worker run's time outside GPU jobs (the same CPU jobs)."""
    done = default["gpu_job_count_by_rule"]
    shortest = min(j["wall_s"] for j in default["gpu_jobs"])
    per_rule = {rule: default["gpu_job_wall_s_by_rule"].get(rule, shortest) for rule in worker["gpu_job_count_by_rule"]}
    unreached = {rule: count - done.get(rule, 0) for rule, count in worker["gpu_job_count_by_rule"].items()}
    measured = sum(j["wall_s"] for j in default["gpu_jobs"])
    unreached_s = sum(per_rule[rule] * count for rule, count in unreached.items())
    outside = worker["study_s"] - sum(j["wall_s"] for j in worker["gpu_jobs"])
    return {"estimated_study_s": round(measured + unreached_s + outside, 1),
            "measured_gpu_jobs": len(default["gpu_jobs"]), "measured_gpu_jobs_s": round(measured, 1),
            "unreached_gpu_jobs": unreached, "unreached_job_wall_s_by_rule": {k: round(v, 1) for k, v in per_rule.items()},
            "outside_gpu_jobs_s (from the worker run)": round(outside, 1)}


def add_default_estimate(report: dict) -> None:
    """``default_estimate`` in the report, when its default run was cut by the time limit."""
    ways = report["ways"]
    if "default" in ways and ways["default"]["exit"] == "timeout" and "worker" in ways:
        report["default_estimate"] = estimate_unfinished_default(ways["default"], ways["worker"])


def best_steady_mfu(way: dict) -> float | None:
    """The best steady-loop MFU of a way's training jobs after the worker's first (whole loop);
    a job with no steady steps (NaN) left out."""
    steady = [t["steady_loop_mfu"] for t in way["training"][1:]
              if t.get("steady_loop_mfu") is not None and not math.isnan(t["steady_loop_mfu"])]
    return round(max(steady), 3) if steady else None


def headline(r: dict) -> dict:
    """The keys the issue asks for, from the ways that ran."""
    ways = r.get("ways", {})
    out = {}
    if "default" in ways:
        out["default_study_s"] = ways["default"]["study_s"]
        if "default_estimate" in r:  # the run hit the time limit (add_default_estimate)
            out["default_study_s"] = r["default_estimate"]["estimated_study_s"]
            out["default_study_is_estimate"] = True
    if "worker" in ways:
        w = ways["worker"]
        out.update(worker_study_s=w["study_s"], worker_gpu_busy=w["gpu_busy"],
                   worker_job_overhead_s=w.get("job_overhead_mean_s"),
                   worker_job_overhead_sum_s=w.get("job_overhead_sum_s"),
                   worker_peak_gpu_memory_gib=w["peak_gpu_memory_gib"])
        # After warm-up: the training jobs after the worker's first (whole loop), and their loops after epoch 1.
        later = [t["loop_mfu"] for t in w["training"][1:] if "loop_mfu" in t]
        out["worker_loop_mfu"] = round(sum(later) / len(later), 3) if later else None
        out["worker_steady_loop_mfu"] = best_steady_mfu(w)
    steps = r.get("incremental", {})
    for step in ("add_one", "nochange", "warm_study"):
        if step in steps:
            out[f"{step}_s"] = steps[step]["study_s"]
    if "warm_study" in steps:
        out["warm_study_gpu_busy"] = steps["warm_study"]["gpu_busy"]
    if "shared_gpu" in ways:
        shared = ways["shared_gpu"]
        out.update(shared_gpu_study_s=shared["study_s"], shared_gpu_gpu_busy=shared["gpu_busy"],
                   shared_gpu_peak_gpu_memory_gib=shared["peak_gpu_memory_gib"])
        if "worker" in ways and shared["study_s"]:
            out["shared_gpu_speedup_vs_worker"] = round(ways["worker"]["study_s"] / shared["study_s"], 2)
    for way, (prefix, _) in TRAINING_WAYS.items():
        if way in ways:
            measured = ways[way]
            out.update({f"{prefix}_study_s": measured["study_s"], f"{prefix}_gpu_busy": measured["gpu_busy"],
                        f"{prefix}_steady_loop_mfu": best_steady_mfu(measured)})
            if "worker" in ways and measured["study_s"]:
                out[f"{prefix}_speedup_vs_worker"] = round(ways["worker"]["study_s"] / measured["study_s"], 2)
    if "notebook" in ways and "default" in ways:
        out["notebook_study_s"] = estimate_notebook(ways["notebook"], ways["default"], r.get("full_prompts", 76))[
            "estimated_study_s"]
        out["notebook_study_is_estimate"] = True
    elif "notebook_estimate" in r:
        out["notebook_study_s"] = r["notebook_estimate"]["estimated_study_s"]
        out["notebook_study_is_estimate"] = True
    if "default" in ways:
        d = ways["default"]
        out.update(default_gpu_busy=d["gpu_busy"], default_job_overhead_s=d.get("job_overhead_mean_s"),
                   default_job_overhead_sum_s=d.get("job_overhead_sum_s"),
                   default_peak_gpu_memory_gib=d["peak_gpu_memory_gib"])
    if out.get("worker_study_s"):
        for way in ("default", "notebook"):
            if out.get(f"{way}_study_s"):
                out[f"worker_speedup_vs_{way}"] = round(out[f"{way}_study_s"] / out["worker_study_s"], 2)
    return out


def tables_equal(work: Path, a: str, b: str) -> bool | None:
    """experiments.csv of two ways equal except timing columns (None when either is missing)."""
    import pandas as pd

    from dpo_study.stages.tables import TIMING_COLUMNS

    paths = [work / way / "results/tables/experiments.csv" for way in (a, b)]
    if not all(p.exists() for p in paths):
        return None
    frames = [pd.read_csv(p).drop(columns=[c for c in TIMING_COLUMNS if c in pd.read_csv(p).columns]) for p in paths]
    keep = [c for c in frames[0].columns if c not in ("git_commit", "config_hash")]
    return frames[0][keep].equals(frames[1][keep])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/dpo-study-bench"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--ways", default="worker,default,notebook")
    parser.add_argument("--model", type=Path, default=None, help="a model folder already built (else one is built)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and a one-experiment study (CPU smoke test)")
    parser.add_argument("--cores", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds for the whole run")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, help="join earlier results into --json")
    parser.add_argument("--notebook-from", type=Path, default=None,
                        help="with --merge and no notebook sample: estimate it from bench/h200.py's JSON")
    parser.add_argument("--extra", nargs="+", type=Path, default=None, help="with --merge: JSON files kept as keys")
    parser.add_argument("--incremental", action="store_true",
                        help="after the worker way: a no-change re-run, one experiment added, a warm full study")
    parser.add_argument("--experiments", type=int, default=None,
                        help="only the first N experiments of config/config.yaml (and the questions between them)")
    parser.add_argument("--profile-step", choices=["full", "nochange", "add_one", "warm_study"], default=None,
                        help="run this step's worker jobs under cProfile and summarise where their time went")
    args = parser.parse_args()
    args.deadline = time.monotonic() + args.time_limit
    if args.merge:
        merged = {"ways": {}, "runs": []}
        for path in args.merge:
            part = json.loads(path.read_text())
            merged["ways"].update(part["ways"])
            merged["runs"].append({k: v for k, v in part.items() if k != "ways"})
        if "notebook" in merged["ways"] and "default" in merged["ways"]:
            merged["notebook_estimate"] = estimate_notebook(merged["ways"]["notebook"], merged["ways"]["default"], 76)
        elif args.notebook_from and "default" in merged["ways"]:
            merged["notebook_estimate"] = notebook_from_single_jobs(merged["ways"]["default"],
                                                                    json.loads(args.notebook_from.read_text()))
        add_default_estimate(merged)
        for extra in args.extra or []:  # other figures of the same calls (e.g. the fp16 run)
            merged[extra.stem] = json.loads(extra.read_text())
        merged.update(headline(merged))
        args.json.write_text(json.dumps(merged, indent=1) + "\n")
        say(json.dumps(headline(merged), indent=1))
        return

    import torch

    on_gpu = torch.cuda.is_available()
    args.work.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(sys.argv), "machine": torch.cuda.get_device_name() if on_gpu else "cpu",
              "host_cpu": host_cpu(), "cores": args.cores, "full_prompts": 76, "ways": {}}
    model_dir = args.model
    if model_dir is None:
        model_dir = args.work / "model"
        start = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "bench/random_model.py"), str(model_dir),
                        *(["--tiny", "--layers", "2"] if args.tiny else [])], check=True)
        report["model_build_s"] = round(time.perf_counter() - start, 1)
    from random_model import stand_in_encoder

    args.encoder = stand_in_encoder(args.work / "encoder")
    report["prepared"] = prepare_machine(args.cores, on_gpu)
    report["relevance_encoder"] = ("random weights of all-MiniLM-L6-v2's shape (bench/random_model.py --encoder)"
                                   if args.encoder else "the bundled all-MiniLM-L6-v2")
    for way in args.ways.split(","):
        report["ways"][way] = run_way(way, args.work, model_dir.resolve(), args, on_gpu)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1) + "\n")
    for other in ("default", "shared_gpu", *TRAINING_WAYS):
        if {"worker", other} <= set(report["ways"]):
            report[f"tables_equal_worker_{other}"] = tables_equal(args.work, "worker", other)
    # After the comparison of the ways: the incremental steps add an experiment to the worker's folder.
    if "worker" in report["ways"] and args.incremental:
        incremental(args.work, model_dir.resolve(), args, on_gpu, report)
    add_default_estimate(report)
    report.update(headline(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    say(json.dumps(headline(report), indent=1))


if __name__ == "__main__":
    main()
