"""The resident GPU worker (dpo_study.runtime.worker) on the CPU: jobs, failures, kills, plans, fake GPUs.

Stages here are small functions of a module written into the test's folder; each test has its own
worker folder (DPO_STUDY_GPU_LOCKS), so its workers are its own, and ends them when it ends.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from dpo_study.runtime import gpus, worker
from snakemake_helpers import SNAKEMAKE

STAGES = '''
import json, os, time, logging

def write(out, text, threads=1):
    logging.getLogger("stage").info("writing %s with %d threads", text, threads)
    print("printed", text)
    with open(out, "w") as handle:
        json.dump({"text": text, "pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}, handle)

def fail(out):
    raise ValueError("bad input in " + out)

def die(out):
    os._exit(3)

def with_model(out, manifest):
    write(out, manifest)

def environment(out, variable):
    with open(out, "w") as handle:
        json.dump({"value": os.environ.get(variable), "pid": os.getpid()}, handle)

def sleep(out, seconds):
    start = time.time()
    time.sleep(seconds)
    with open(out, "w") as handle:
        json.dump({"pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start,
                   "end": time.time()}, handle)
'''


@pytest.fixture
def stages(tmp_path, monkeypatch):
    (tmp_path / "worker_test_stages.py").write_text(STAGES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO / "src")]))
    monkeypatch.setenv(gpus.LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    monkeypatch.setenv(worker.IDLE_VARIABLE, "60")
    yield tmp_path
    for info in (tmp_path / "locks" / "workers").glob("*.json"):
        try:
            os.kill(json.loads(info.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, ValueError, KeyError):
            pass


def run(tmp_path, stage, name, owner=None, gpu=None, **kwargs):
    out = tmp_path / f"{name}.json"
    result = worker.run_stage(f"worker_test_stages:{stage}", {"out": str(out), **kwargs}, str(tmp_path / f"{name}.log"),
                              gpu, owner=owner or os.getpid())
    return result, (json.loads(out.read_text()) if out.exists() else None)


def wait_dead(pid, seconds=15):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not worker.alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_jobs_run_in_one_resident_worker_with_their_output_in_their_own_log(stages):
    first, written = run(stages, "write", "a", text="one", threads=3)
    second, again = run(stages, "write", "b", text="two")
    assert first["status"] == second["status"] == "done"
    assert written["pid"] == again["pid"] == first["worker_pid"] != os.getpid()
    log = (stages / "a.log").read_text()
    assert "writing one with 3 threads" in log and "printed one" in log
    assert "two" not in log and "printed two" in (stages / "b.log").read_text()


def test_the_worker_plans_with_the_gpu_shares_of_the_job_it_runs(stages, monkeypatch):
    # The job's claim sets them (software.jobs_per_gpu); the worker started earlier must see this job's.
    monkeypatch.setenv(gpus.SHARES_VARIABLE, "2")
    _, first = run(stages, "environment", "a", variable=gpus.SHARES_VARIABLE)
    monkeypatch.setenv(gpus.SHARES_VARIABLE, "3")
    _, second = run(stages, "environment", "b", variable=gpus.SHARES_VARIABLE)
    assert first["pid"] == second["pid"] and (first["value"], second["value"]) == ("2", "3")


def test_a_failing_job_fails_alone_and_the_next_job_runs_in_the_same_worker(stages):
    _, before = run(stages, "write", "a", text="one")
    with pytest.raises(worker.StageFailed, match="ValueError: bad input"):
        run(stages, "fail", "bad")
    assert "Traceback" in (stages / "bad.log").read_text()
    _, after = run(stages, "write", "c", text="three")
    assert before["pid"] == after["pid"]


def test_a_killed_worker_is_replaced_by_the_next_job(stages):
    _, before = run(stages, "write", "a", text="one")
    os.kill(before["pid"], signal.SIGKILL)
    assert wait_dead(before["pid"])
    _, after = run(stages, "write", "b", text="two")
    assert after["pid"] != before["pid"]


def test_a_worker_whose_folder_was_deleted_does_not_block_the_next_one(stages):
    _, before = run(stages, "write", "a", text="one")
    for path in (stages / "locks/workers").iterdir():
        path.unlink()  # e.g. a results folder removed with its locks while its worker idles
    _, after = run(stages, "write", "b", text="two")
    assert after["pid"] != before["pid"] and worker.alive(before["pid"])
    os.kill(before["pid"], signal.SIGKILL)


def test_a_worker_that_dies_during_a_job_fails_that_job_only(stages):
    _, before = run(stages, "write", "a", text="one")
    with pytest.raises(worker.WorkerError, match="ended during this job"):
        run(stages, "die", "dead")
    assert "ended during this job" in (stages / "dead.log").read_text()
    _, after = run(stages, "write", "b", text="two")
    assert after["pid"] != before["pid"]


def test_a_job_whose_process_is_killed_takes_its_worker_down(stages):
    """Snakemake cancelling a job (its process killed) must not leave the worker writing its outputs."""
    code = ("import os, sys; from dpo_study.runtime import worker; "
            f"worker.run_stage('worker_test_stages:sleep', {{'out': {str(stages / 'late.json')!r}, 'seconds': 30}}, "
            f"{str(stages / 'late.log')!r}, None, owner={os.getpid()})")
    client = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    end = time.monotonic() + 60
    while not ((stages / "late.log").exists() and worker.workers()) and time.monotonic() < end:
        time.sleep(0.1)
    pid = worker.workers()[0]["pid"]
    client.kill()
    client.wait()
    assert wait_dead(pid)
    assert not (stages / "late.json").exists()


def test_with_no_idle_time_the_worker_ends_with_the_snakemake_run_that_started_it(stages, monkeypatch):
    monkeypatch.setenv(worker.IDLE_VARIABLE, "0")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _, written = run(stages, "write", "a", owner=owner.pid, text="one")
    finally:
        owner.kill()
        owner.wait()
    assert wait_dead(written["pid"])


def test_the_worker_outlives_the_run_that_started_it_and_serves_the_next(stages):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _, first = run(stages, "write", "a", owner=owner.pid, text="one")
    finally:
        owner.kill()
        owner.wait()
    time.sleep(1.5)  # the worker looks at its run every 0.5 s
    assert worker.alive(first["pid"])
    _, second = run(stages, "write", "b", text="two")  # another run's job: the same warm worker
    assert second["pid"] == first["pid"]


def test_a_code_change_never_reaches_a_stale_worker(stages, tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    (package / "module.py").write_text("X = 1\n")
    before = worker.code_key(package)
    (package / "module.py").write_text("X = 2\n")
    assert worker.code_key(package) != before  # any edit of the package's code: another key
    plan = {"model": None, "unsloth": False}
    assert worker.worker_name("gpu-0", plan, before) != worker.worker_name("gpu-0", plan, worker.code_key(package))
    # ... and a job with another key is served by another worker, which stops the stale one of its GPU
    _, old = run(stages, "write", "a", text="one")
    real = worker.code_key

    try:
        worker.code_key = lambda: real() + "x"
        _, new = run(stages, "write", "b", text="two")
    finally:
        worker.code_key = real
    assert new["pid"] != old["pid"] and wait_dead(old["pid"])


def test_the_code_key_covers_every_layer_and_not_the_jobs_own_folders(tmp_path, monkeypatch):
    """An edit of a stage (not only of runtime/) makes another key; a job's script folder or working
    directory on sys.path (another run folder) does not: the warm worker serves the next study."""
    assert worker.PACKAGE == REPO / "src/dpo_study"
    modules = {p.relative_to(worker.PACKAGE).parts[0] for p in worker.PACKAGE.rglob("*.py")}
    assert {"config", "stages", "runtime", "analysis"} <= modules
    key = worker.code_key()
    for folder in ("run-a/.snakemake/scripts", "run-b/.snakemake/scripts"):
        (tmp_path / folder).mkdir(parents=True)
        monkeypatch.syspath_prepend(str(tmp_path / folder))
        monkeypatch.chdir(tmp_path / folder)
        assert worker.code_key() == key
    # A Snakemake script job has site-packages twice on its path; the warm start's process once.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    monkeypatch.syspath_prepend(site)
    assert worker.code_key() == key


def test_workers_are_listed_and_stopped_from_the_command_line(stages):
    _, written = run(stages, "write", "a", text="one")
    cli = [sys.executable, "-m", "dpo_study.runtime.worker"]
    listing = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
    assert f"pid {written['pid']}" in listing and "jobs 1" in listing and "idle" in listing
    stopped = subprocess.run([*cli, "stop"], capture_output=True, text=True, check=True).stdout
    assert "stopped" in stopped and wait_dead(written["pid"])
    assert "no worker is running" in subprocess.run([*cli, "list"], capture_output=True, text=True).stdout


def test_cpu_stages_get_a_worker_of_their_own_beside_the_gpu_worker(stages):
    _, on_gpu = run(stages, "write", "a", text="one")
    out = stages / "cpu.json"
    worker.run_stage("worker_test_stages:write", {"out": str(out), "text": "cpu"}, str(stages / "cpu.log"), None,
                     lane="cpu")
    on_cpu = json.loads(out.read_text())
    assert on_cpu["pid"] != on_gpu["pid"] and worker.alive(on_gpu["pid"])  # neither stops the other
    assert {w["slot"] for w in worker.workers()} == {"no-gpu", "cpu"}


def test_an_idle_worker_ends_after_its_idle_time(stages, monkeypatch):
    monkeypatch.setenv(worker.IDLE_VARIABLE, "1")
    _, written = run(stages, "write", "a", text="one")
    assert wait_dead(written["pid"], seconds=10)
    _, again = run(stages, "write", "b", text="two")  # and the next job starts another
    assert again["pid"] != written["pid"]


def test_a_job_with_another_load_plan_gets_a_fresh_worker(stages):
    manifests = []
    for name in ("one", "two"):
        path = stages / f"{name}.model.json"
        path.write_text(json.dumps({"path": str(stages / name)}))
        manifests.append(str(path))
    _, a = run(stages, "with_model", "a", manifest=manifests[0])
    _, b = run(stages, "with_model", "b", manifest=manifests[0])
    _, c = run(stages, "with_model", "c", manifest=manifests[1])
    assert a["pid"] == b["pid"] != c["pid"]
    assert wait_dead(a["pid"])  # the old plan's worker made room


def test_concurrent_jobs_on_one_gpu_are_served_one_at_a_time(stages):
    code = ("import os; from dpo_study.runtime import worker; "
            f"worker.run_stage('worker_test_stages:sleep', {{'out': os.environ['OUT'], 'seconds': 1}}, "
            f"os.environ['OUT'] + '.log', None, owner={os.getpid()})")
    clients = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OUT": str(stages / f"c{i}.json")})
               for i in range(3)]
    assert [c.wait(timeout=120) for c in clients] == [0, 0, 0]
    pids = {json.loads((stages / f"c{i}.json").read_text())["pid"] for i in range(3)}
    assert len(pids) == 1


def test_cpu_stage_jobs_at_once_run_side_by_side_and_the_measures_keep_the_first_worker(stages, monkeypatch):
    """Two report jobs at once run in two CPU-stage workers; a measure job waits for the first one,
    whose sentence encoder is loaded, rather than take a free second one."""
    monkeypatch.setenv(gpus.CPU_WORKERS_VARIABLE, "2")

    def client(name, stage="sleep", seconds=2.0):
        code = ("import os; from dpo_study.runtime import worker; "
                f"worker.run_stage('worker_test_stages:{stage}', {{'out': os.environ['OUT'], 'seconds': {seconds}}}, "
                f"os.environ['OUT'] + '.log', None, owner={os.getpid()}, lane='cpu')")
        return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OUT": str(stages / f"{name}.json")})

    clients = [client("a"), client("b")]
    assert [c.wait(timeout=120) for c in clients] == [0, 0]
    a, b = (json.loads((stages / f"{n}.json").read_text()) for n in "ab")
    assert a["pid"] != b["pid"] and a["start"] < b["end"] and b["start"] < a["end"]  # side by side
    assert {w["slot"] for w in worker.workers()} == {"cpu", "cpu-1"}
    first = next(w["pid"] for w in worker.workers() if w["slot"] == "cpu")
    code = ("import os; from dpo_study.runtime import worker; worker.PINNED_STAGES = ('worker_test_stages:sleep',); "
            f"worker.run_stage('worker_test_stages:sleep', {{'out': os.environ['OUT'], 'seconds': 0.1}}, "
            f"os.environ['OUT'] + '.log', None, owner={os.getpid()}, lane='cpu')")
    for name in "cd":  # one after another: the second worker is free each time, and not taken
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "OUT": str(stages / f"{name}.json")}, check=True)
        assert json.loads((stages / f"{name}.json").read_text())["pid"] == first


def test_worker_mode():
    assert worker.enabled("auto", {}) and worker.enabled("on", {"SLURM_JOB_ID": "1"})
    assert not worker.enabled("auto", {"SLURM_JOB_ID": "1"}) and not worker.enabled("off", {})
    assert worker.enabled(True, {}) and not worker.enabled(False, {})  # YAML's bare on/off
    with pytest.raises(ValueError, match="gpu_worker"):
        worker.enabled("sometimes", {})


SNAKEFILE = """
rule all:
    input: expand("job{i}.json", i=range(6))

rule job:
    output: out="job{i}.json"
    log: "logs/job{i}.log"
    params: seconds=2
    resources: gpu=1
    script: "job.py"
"""
JOB = """
from dpo_study.runtime.smk import call
call("worker_test_stages:sleep", snakemake)
"""


def test_each_fake_gpu_gets_its_own_worker_and_each_job_the_worker_of_the_gpu_it_claimed(stages, monkeypatch):
    monkeypatch.setenv(worker.IDLE_VARIABLE, "0")  # workers that end with the run
    (stages / "Snakefile").write_text(SNAKEFILE)
    (stages / "job.py").write_text(JOB)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "fake0,fake1"}
    subprocess.run([*SNAKEMAKE, "-d", str(stages), "-s", str(stages / "Snakefile"), "--cores", "4",
                    "--resources", "gpu=2"], env=env, check=True, capture_output=True, timeout=300)
    jobs = [json.loads((stages / f"job{i}.json").read_text()) for i in range(6)]
    assert {j["gpu"] for j in jobs} == {"fake0", "fake1"}
    workers = {gpu: {j["pid"] for j in jobs if j["gpu"] == gpu} for gpu in ("fake0", "fake1")}
    assert all(len(pids) == 1 for pids in workers.values())  # one worker per GPU, serving all its jobs ...
    assert workers["fake0"] != workers["fake1"]  # ... and not the other GPU's
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:]
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping and all(a["gpu"] != b["gpu"] for a, b in overlapping)  # no job waited for the other GPU
    for pid in workers["fake0"] | workers["fake1"]:  # gone with the Snakemake run
        assert wait_dead(pid)


def test_with_two_jobs_per_gpu_one_gpu_serves_two_jobs_at_once_each_share_in_a_worker_of_its_own(stages, monkeypatch):
    monkeypatch.setenv(worker.IDLE_VARIABLE, "0")
    (stages / "Snakefile").write_text(SNAKEFILE)
    (stages / "job.py").write_text(JOB)
    (stages / "shares.yaml").write_text("software: {jobs_per_gpu: 2}\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "fake0"}
    subprocess.run([*SNAKEMAKE, "-d", str(stages), "-s", str(stages / "Snakefile"), "--cores", "4",
                    "--resources", "gpu=2", "--configfile", str(stages / "shares.yaml")],
                   env=env, check=True, capture_output=True, timeout=300)
    jobs = [json.loads((stages / f"job{i}.json").read_text()) for i in range(6)]
    assert {j["gpu"] for j in jobs} == {"fake0"}
    assert len({j["pid"] for j in jobs}) == 2  # a worker per share of the one GPU
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:]
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping and all(a["pid"] != b["pid"] for a, b in overlapping)


def test_a_training_jobs_own_process_hands_it_to_the_worker_without_importing_torch(tmp_path):
    """The job's side names its worker from the manifest alone; the plan (backend, Unsloth) is made in
    the worker, where torch is up: importing torch and starting CUDA cost a training job ~3 s."""
    manifest = tmp_path / "model.json"
    manifest.write_text(json.dumps({"path": str(tmp_path / "model")}))
    kwargs = {"manifest": str(manifest), "training": {"recipe": "fast"}, "model_settings": {"name": "m"}}
    code = ("import sys; from dpo_study.runtime import smk, worker; from dpo_study.runtime.runner import worker_key; "
            f"key = worker_key({kwargs!r}); print(key, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["{'model':", repr(str(tmp_path / "model")) + "}", "False"]


def test_a_worker_set_up_for_another_plan_hands_the_job_back_and_exits(tmp_path, monkeypatch):
    """Same model, another process set-up (Unsloth): the job gets ``retire`` and starts a fresh worker."""
    from dpo_study.runtime import worker_process

    class Job:
        process_key = {"model": "m", "unsloth": True}

    class Connection:
        def __init__(self):
            self.sent = []

        def recv(self):
            return {"stage": "x:y", "kwargs": {}, "log": str(tmp_path / "job.log")}

        def send(self, message):
            self.sent.append(message)

    monkeypatch.setattr(worker_process, "job_plan", lambda kwargs: Job())
    serving = worker_process.Worker(tmp_path, "gpu-0-name", 0, 60, "gpu-0", {"model": "m"})
    serving.plan = {"model": "m", "unsloth": False}
    exits = []
    monkeypatch.setattr(serving, "exit", lambda reason: exits.append(reason) or (_ for _ in ()).throw(SystemExit))
    connection = Connection()
    with pytest.raises(SystemExit):
        serving.handle(connection)
    assert connection.sent == [{"status": "retire"}] and "another load plan" in exits[0]


class Cycle:
    def __init__(self):
        self.me = self  # only a collection frees it


def test_a_job_collects_its_own_garbage_only_and_a_dropped_older_model_is_freed():
    import gc
    import weakref

    from dpo_study.runtime.worker_process import JobCollections

    collections = JobCollections()
    gc.disable()  # no automatic collection between the steps
    try:
        older = Cycle()
        older_ref = weakref.ref(older)
        started = collections.start()
        assert gc.get_freeze_count() > 0
        job = Cycle()
        job_ref = weakref.ref(job)
        del job, older  # both garbage now; the older one is frozen
        record = collections.end(started, evicted=False)
        assert job_ref() is None and older_ref() is not None
        assert gc.get_freeze_count() == 0
        assert record["gc_full_collections"] >= 1 and record["gc_seconds"] >= 0
        collections.end(collections.start(), evicted=True)  # e.g. the resident model dropped in the job
        assert older_ref() is None
    finally:
        gc.enable()
        gc.callbacks.remove(collections._clock)
