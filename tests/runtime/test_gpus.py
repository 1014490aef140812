"""The per-job GPU allocator (gpus.py), with fake device ids: no GPU needed."""

import json
import os
import subprocess
import sys
import time

from conftest import REPO
from snakemake_helpers import SNAKEMAKE

from dpo_study.runtime import gpus

CLAIM = (
    "import os, sys, time; from dpo_study.runtime.gpus import claim_gpu, claimed_share; "
    "gpu = claim_gpu(sys.argv[1], poll_seconds=0.05, jobs_per_gpu=int(sys.argv[3])); "
    "print(gpu, os.environ['CUDA_VISIBLE_DEVICES'], time.time(), claimed_share(), flush=True); "
    "time.sleep(float(sys.argv[2]))"
)


def claimer(lock_dir, hold_seconds, visible="7,9", jobs_per_gpu=1):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CUDA_VISIBLE_DEVICES": visible}
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir), str(hold_seconds), str(jobs_per_gpu)],
                            env=env, stdout=subprocess.PIPE, text=True)


def first_line(process, share=False):
    gpu, visible, when, claimed = process.stdout.readline().split()
    return (gpu, visible, float(when), int(claimed)) if share else (gpu, visible, float(when))


def test_two_jobs_per_gpu_share_one_gpu_and_a_third_waits(tmp_path):
    a, b = claimer(tmp_path, 3, visible="7", jobs_per_gpu=2), claimer(tmp_path, 3, visible="7", jobs_per_gpu=2)
    got = [first_line(a, share=True), first_line(b, share=True)]
    assert sorted((gpu, visible, share) for gpu, visible, _, share in got) == [("7", "7", 0), ("7", "7", 1)]
    c = claimer(tmp_path, 0, visible="7", jobs_per_gpu=2)
    _, _, when, _ = first_line(c, share=True)
    a.wait(), b.wait(), c.wait()
    assert when >= min(w for _, _, w, _ in got) + 2.5  # only after one share was released


def test_jobs_running_at_once_get_different_gpus_and_a_third_waits(tmp_path):
    a, b = claimer(tmp_path, 3), claimer(tmp_path, 3)
    got = [first_line(a), first_line(b)]
    assert sorted(g for g, _, _ in got) == ["7", "9"]
    assert all(gpu == visible for gpu, visible, _ in got)  # each job sees only its own GPU
    c = claimer(tmp_path, 0)
    gpu, _, when = first_line(c)
    a.wait(), b.wait(), c.wait()
    assert gpu in ("7", "9") and when >= min(w for _, _, w in got) + 2.5  # only after one was released


def test_a_killed_job_releases_its_gpu(tmp_path):
    holder = claimer(tmp_path, 60, visible="3,4")
    other = claimer(tmp_path, 60, visible="3,4")
    taken = {first_line(holder)[0], first_line(other)[0]}
    holder.kill()
    holder.wait()
    start = time.time()
    third = claimer(tmp_path, 0, visible="3,4")
    gpu, _, _ = first_line(third)
    other.kill(), third.wait(), other.wait()
    assert taken == {"3", "4"} and time.time() - start < 20


def test_no_or_one_gpu_needs_no_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.claim_gpu(tmp_path) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    assert gpus.claim_gpu(tmp_path) == "GPU-abc"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-abc" and not list(tmp_path.iterdir())


def test_a_claim_records_how_many_jobs_share_the_gpu_and_the_memory_plan_takes_its_part(tmp_path, monkeypatch):
    import torch

    from dpo_study.runtime import memory

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: type("P", (), {"total_memory": 80 * 2**30}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    monkeypatch.setenv(gpus.SHARES_VARIABLE, "")
    monkeypatch.setenv(gpus.SHARE_VARIABLE, "")  # both restored after the test
    gpus.claim_gpu(tmp_path)
    assert gpus.gpu_shares() == 1 and memory.gpu_memory_bytes() == 80 * 2**30
    gpus.claim_gpu(tmp_path, jobs_per_gpu=2)  # two jobs, two workers, two copies of the base model
    assert gpus.gpu_shares() == 2 and memory.gpu_memory_bytes() == 40 * 2**30
    gpus._held.pop().close()  # the share's lock


def test_visible_ids_come_from_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0, 2,5")
    assert gpus.visible_gpu_ids() == ["0", "2", "5"]


SNAKEFILE = """
rule all:
    input: expand("job{i}.json", i=range(4))

rule job:
    output: "job{i}.json"
    resources: gpu=1
    script: "job.py"
"""
JOB = """
import json, os, sys, time
from dpo_study.runtime.smk import claim_gpu
claim_gpu()
start = time.time()
time.sleep(2)
json.dump({"gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()},
          open(snakemake.output[0], "w"))
"""


def test_snakemake_jobs_share_two_fake_gpus(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "job.py").write_text(JOB)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "fake0,fake1", "PYTHONPATH": str(REPO / "src"),
           gpus.LOCK_DIR_VARIABLE: str(tmp_path / "locks")}
    subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-s", str(tmp_path / "Snakefile"), "--cores", "4",
                    "--resources", "gpu=2"], env=env, check=True, capture_output=True, timeout=300)
    jobs = [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(4)]
    assert {j["gpu"] for j in jobs} == {"fake0", "fake1"}
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:]
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping  # two jobs ran at once ...
    assert all(a["gpu"] != b["gpu"] for a, b in overlapping)  # ... each on its own GPU
