"""Every bench/ entry point runs (on a tiny model, on the CPU), so the committed figures stay reproducible.

Only the notebook's Unsloth generation loop (bench/generate_job.py loop) needs a GPU and is not run here.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

BENCH = REPO / "bench"


@pytest.fixture
def study():
    """bench/study.py as a module."""
    sys.path.insert(0, str(BENCH))
    try:
        import study as module
    finally:
        sys.path.remove(str(BENCH))
    return module


def run(*args, timeout=900, **kwargs):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            cwd=REPO, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def bench_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    run(BENCH / "random_model.py", folder / "model", "--tiny", "--layers", "1")
    return folder


def test_random_model_writes_a_model_and_its_manifest(bench_model):
    manifest = json.loads((bench_model / "model.json").read_text())
    assert (bench_model / "model" / "config.json").exists() and manifest["path"] == str(bench_model / "model")


def test_train_job_and_generate_job_and_gpu_overlap_run(bench_model, tmp_path):
    sys.path.insert(0, str(BENCH))
    from h200 import write_inputs

    pairs, prompts = write_inputs(tmp_path, 4)
    out = tmp_path / "runs" / "one"
    run(BENCH / "train_job.py", bench_model / "model.json", pairs, out, json.dumps({"recipe": "fast"}))
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] > 0 and summary["plan"]["precision"] == "fp32" and (out / "adapter").is_dir()
    generated = tmp_path / "generated.json"
    run(BENCH / "generate_job.py", "project", bench_model / "model.json", prompts, out / "adapter", generated,
        "auto")
    assert json.loads(generated.read_text())["runs"][0]["prompts"] > 0
    overlap = subprocess.run([sys.executable, BENCH / "gpu_overlap.py", tmp_path / "runs"], capture_output=True,
                             text=True, cwd=REPO)
    assert "1 training jobs, 0 pairs ran at once" in overlap.stdout and overlap.returncode == 1


def test_demo_cpu_benchmark_command_is_valid(tmp_path):
    result = run(BENCH / "demo_cpu.py", "--dry-run")
    assert "cold run" in result.stdout
    # side by side, as BENCHMARKS.md's worker figures are taken (the model build first, untimed)
    out = tmp_path / "demo.json"
    result = run(BENCH / "demo_cpu.py", "--dry-run", "--gpu-worker", "off", "on", "--json", out)
    assert "worker speed-up of the cold run (off / on)" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["dry_run"] and set(figures["runs"]) == {"off", "on"}


@pytest.mark.slow
def test_h200_benchmark_runs_on_a_tiny_model(tmp_path):
    out = tmp_path / "h200.json"
    run(BENCH / "h200.py", "--tiny", "--layers", "1", "--work", tmp_path, "--json", out, "--prompts", "4",
        "--skip", "homework,gen_loop,auto_default_allocator,auto_ref_in_loop")
    results = json.loads(out.read_text())
    assert results["train_auto"]["ok"] and results["gen_project"]["ok"]


@pytest.mark.slow
def test_study_benchmark_runs_a_tiny_study_with_and_without_the_worker_then_the_incremental_steps(tmp_path):
    """One call, as on the GPU: the worker and default ways side by side, then (--incremental) a
    no-change re-run, one experiment added and the same study in a fresh folder with the worker warm."""
    out = tmp_path / "study.json"
    run(BENCH / "study.py", "--tiny", "--work", tmp_path, "--json", out, "--ways", "worker,default", "--incremental",
        "--cores", "2", "--profile-step", "add_one", timeout=1800)
    results = json.loads(out.read_text())
    worker, default = results["ways"]["worker"], results["ways"]["default"]
    assert results["host_cpu"].endswith(f"{os.cpu_count()} logical CPUs")  # machines differ by their hosts
    assert results["prepared"]["bytecode_folders"] and results["prepared"]["bytecode_s"] >= 0  # before the first way
    assert worker["exit"] == default["exit"] == 0
    assert len(worker["workers"]) == 1 and not default["workers"]  # every GPU job in one worker, or none
    assert results["tables_equal_worker_default"] is True
    assert results["worker_study_s"] == worker["study_s"] and results["default_study_s"] == default["study_s"]
    for way in (worker, default):  # the one experiment's training job is found under its keyed folder
        assert [run["final_loss"] is not None for run in way["training"]] == [True]
        assert way["training"][0]["peak_memory_gib"] > 0  # the job's measured peak, against its plan's estimate
    steps = results["incremental"]
    assert all(step["exit"] == 0 for step in steps.values())
    assert results["nochange_s"] == steps["nochange"]["study_s"] and steps["nochange"]["jobs"] == 0
    added = steps["add_one"]["phases"]["jobs_s_by_rule"]
    assert added["train_adapter"]["jobs"] == 1 and "measure_base" not in added  # only the new answers measured
    profile = steps["add_one"]["profile"]  # --profile-step: that step's worker jobs, by stage
    assert profile["train_adapter"]["jobs"] == 1 and profile["train_adapter"]["top_cumulative"]
    assert profile["train_adapter"]["top_self"]
    # the workers' garbage collections, timed per job (worker way only)
    assert set(worker["worker_gc_s_by_lane"]) == {"gpu", "cpu"} and worker["worker_gc_s_by_lane"]["gpu"] > 0
    assert default["worker_gc_s_by_lane"] == {"gpu": 0, "cpu": 0}
    outside = worker["gpu_jobs_outside_worker_s"]  # where a GPU job's time outside the worker goes
    assert set(outside) == {"to_call_s", "claim_s", "handoff_s"} and outside["to_call_s"] > 0
    assert "profile" not in steps["nochange"] and "profile" not in worker
    # the warm full study ran in the worker the add-one step left (no new worker started)
    assert steps["warm_study"]["workers"] and set(steps["warm_study"]["workers"]) <= set(steps["add_one"]["workers"])
    phases = worker["phases"]
    assert phases["before_first_job_s"] >= 0 and "tables" in phases["jobs_s_by_rule"]
    assert phases["gpu_lane_s"] > 0 and phases["after_gpu_lane_s"] > 0  # the report side runs after the GPU lane


def test_a_timed_out_default_run_is_completed_by_its_own_per_rule_means():
    """A default-way run cut by the call's time limit: its unreached GPU jobs are added at its own
    per-rule means, and the headline says the figure is an estimate."""
    sys.path.insert(0, str(BENCH))
    try:
        from study import add_default_estimate, estimate_unfinished_default, headline
    finally:
        sys.path.remove(str(BENCH))

    job = lambda rule, wall: {"rule": rule, "wall_s": wall}  # noqa: E731
    default = {"exit": "timeout", "study_s": 100.0, "gpu_jobs": [job("train", 40), job("train", 30), job("generate", 20)],
               "gpu_job_count_by_rule": {"train": 2, "generate": 1}, "gpu_job_wall_s_by_rule": {"train": 35, "generate": 20},
               "gpu_busy": 0.1, "peak_gpu_memory_gib": 1}
    worker = {"exit": 0, "study_s": 50.0, "gpu_jobs": [job("train", 10)] * 2 + [job("generate", 5)] * 3 + [job("reward", 3)],
              "gpu_job_count_by_rule": {"train": 2, "generate": 3, "reward": 1}, "gpu_busy": 0.5,
              "peak_gpu_memory_gib": 1, "training": []}
    estimate = estimate_unfinished_default(default, worker)
    # measured 90; two generate jobs at their mean 20; the never-reached reward at the shortest job (20);
    # outside GPU jobs: 50 - 38 from the worker run
    assert estimate["estimated_study_s"] == 90 + 2 * 20 + 20 + 12
    assert estimate["unreached_gpu_jobs"] == {"train": 0, "generate": 2, "reward": 1}
    report = {"ways": {"default": default, "worker": worker}}
    add_default_estimate(report)
    top = headline(report)
    assert top["default_study_s"] == 162 and top["default_study_is_estimate"] and top["worker_speedup_vs_default"] == 3.24


def test_the_shared_gpu_way_runs_two_jobs_per_gpu_in_workers_and_is_reported_beside_the_worker_way(study, tmp_path):
    config = study.overlay("shared_gpu", tmp_path, tiny=True, on_gpu=True)
    assert config["software"]["jobs_per_gpu"] == 2 and config["software"]["gpu_worker"] == "on"
    assert study.overlay("worker", tmp_path, tiny=True, on_gpu=True)["software"]["jobs_per_gpu"] == 1
    way = {"study_s": 100.0, "gpu_busy": 0.3, "peak_gpu_memory_gib": 27.0, "training": []}
    report = {"ways": {"worker": {**way, "study_s": 150.0}, "shared_gpu": way}}
    assert study.headline(report)["shared_gpu_speedup_vs_worker"] == 1.5
    assert study.headline(report)["shared_gpu_study_s"] == 100.0


def test_the_liger_way_is_the_worker_way_with_ligers_kernels_and_is_reported_beside_it(study, tmp_path):
    config = study.overlay("worker_liger", tmp_path, tiny=False, on_gpu=True)
    assert config["training"] == {"use_liger_kernel": True} and config["software"]["gpu_worker"] == "on"
    assert "training" not in study.overlay("worker", tmp_path, tiny=False, on_gpu=True)
    way = {"study_s": 100.0, "gpu_busy": 0.3, "peak_gpu_memory_gib": 27.0,
           "training": [{"steady_loop_mfu": 0.1}, {"steady_loop_mfu": 0.2}, {"steady_loop_mfu": float("nan")}]}
    top = study.headline({"ways": {"worker": {**way, "study_s": 120.0}, "worker_liger": way}})
    assert top["liger_speedup_vs_worker"] == 1.2 and top["liger_steady_loop_mfu"] == 0.2


def test_a_shorter_study_keeps_its_first_experiments_and_the_questions_between_them(study, tmp_path):
    config = study.overlay("worker", tmp_path, tiny=False, on_gpu=True, experiments=2)
    assert [e["name"] for e in config["experiments"]] == ["homework_default", "q1_support_ratio_1"]
    assert [q["name"] for q in config["questions"]] == ["Q1", "Q4"]
    assert "experiments" not in study.overlay("worker", tmp_path, tiny=False, on_gpu=True)


@pytest.mark.parametrize("way,mode", [("worker_compile", "default"), ("worker_graphs", "reduce-overhead")])
def test_the_compile_ways_are_the_worker_way_with_a_compiled_training_step(study, tmp_path, way, mode):
    config = study.overlay(way, tmp_path, tiny=False, on_gpu=True)
    assert config["training"] == {"torch_compile_mode": mode} and config["software"]["gpu_worker"] == "on"
    base = {"gpu_busy": 0.3, "peak_gpu_memory_gib": 27.0,
            "training": [{"steady_loop_mfu": 0.1}, {"steady_loop_mfu": 0.3}]}  # the first job left out
    top = study.headline({"ways": {"worker": {**base, "study_s": 120.0}, way: {**base, "study_s": 150.0}}})
    prefix = way.removeprefix("worker_")
    assert top[f"{prefix}_speedup_vs_worker"] == 0.8 and top[f"{prefix}_steady_loop_mfu"] == 0.3
