import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Idle OpenMP threads (torch's) sleep instead of spinning. The tests run several torch processes at
# once (`make test`'s processes, each running studies of parallel jobs), and threads spinning in
# one process starve the others: two copies of tests/runtime/test_fast_paths.py's model build side by
# side took 254 s with spinning threads, 30 s without (one alone: ~27 s). Set before torch loads, and
# inherited by every study the tests start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One CPU-stage worker per study: `make test` already keeps every core busy with its processes, so a
# second worker would only pay its start in each small study (tests/runtime/test_worker.py runs two;
# `make demo`, as a user runs it, one per core).
os.environ.setdefault("DPO_STUDY_CPU_WORKERS", "1")


# `make test` runs the suite in several processes (pytest-xdist, `--dist loadscope`, scheduled by
# StudyGroupScheduling below). A module's tests stay in one process, so a module fixture is made
# once, and the modules that read the finished demo study form one group, so that study is made
# once. The groups go out longest first (`--no-loadscope-reorder` keeps the order that
# pytest_collection_modifyitems gives): each process starts on a long one, rather than one of them
# ending alone on the SLURM study. The order is that of CI's `--durations`; groups not named here come
# after these, slow-marked ones first.
DEMO_STUDY_MODULES = ("tests/workflow/test_pipeline.py", "tests/workflow/test_report_pipeline.py",
                      "tests/bench/test_compare_studies.py")
LONGEST_FIRST = ("tests/workflow/test_slurm.py", "demo_study", "tests/workflow/test_worker_pipeline.py",
                 "tests/bench/test_bench.py", "tests/workflow/test_reliability_pipeline.py",
                 "tests/workflow/test_caching.py")


def xdist_group_of(nodeid: str) -> str:
    module = nodeid.split("::")[0]
    return "demo_study" if module in DEMO_STUDY_MODULES else module


def pytest_xdist_make_scheduler(config, log):
    """Groups by xdist_group_of. (pytest-xdist's own `xdist_group` marks set a node id that pytest 9
    no longer reads, so `--dist loadgroup` sends every test out alone.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class StudyGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return StudyGroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    strays = [item.nodeid for item in items
              if "demo_study" in item.fixturenames and xdist_group_of(item.nodeid) != "demo_study"]
    if strays:  # it would make the demo study a second time, in the other process
        raise pytest.UsageError(f"tests/conftest.py: add their modules to DEMO_STUDY_MODULES: {strays}")
    slow = {xdist_group_of(item.nodeid) for item in items if item.get_closest_marker("slow")}

    def rank(item):
        group = xdist_group_of(item.nodeid)
        return (LONGEST_FIRST.index(group), False) if group in LONGEST_FIRST else (len(LONGEST_FIRST), group not in slow)

    items.sort(key=rank)  # stable: within a group, the tests keep their order


@pytest.fixture(scope="session", autouse=True)
def gpu_locks_of_the_tests(tmp_path_factory):
    """The studies of the tests take GPU locks and start resident workers in a folder of their own:
    never those of a study running beside the tests (`make demo`'s, another checkout's)."""
    from dpo_study.runtime.gpus import LOCK_DIR_VARIABLE

    if LOCK_DIR_VARIABLE in os.environ:
        yield
        return
    os.environ[LOCK_DIR_VARIABLE] = str(tmp_path_factory.mktemp("gpu_locks"))
    yield
    del os.environ[LOCK_DIR_VARIABLE]


@pytest.fixture
def train_rows():
    return [
        {"id": i, "prompt": f"question {i}?", "support": f"support answer {i}.", "oppose": f"oppose answer {i}."}
        for i in range(1, 11)
    ]


@pytest.fixture
def write_json(tmp_path):
    def write(name, content):
        path = tmp_path / name
        path.write_text(json.dumps(content, ensure_ascii=False))
        return path

    return write


# The demo study that the slow tests share (tests/workflow/test_pipeline.py, tests/workflow/test_report_pipeline.py):
# one snakemake run on the demo model. ratio_1 has a second seed, so the report shows a seed group.
DEMO_EXPERIMENTS = [
    {"name": "ratio_0", "support_ratio": 0},
    {"name": "ratio_1", "support_ratio": 1},
    {"name": "ratio_1_seed7", "support_ratio": 1, "seed": 7},
]
DEMO_QUESTIONS = [
    {"name": "Q1", "title": "support_ratio 0 vs 1", "a": "ratio_0", "b": "ratio_1"},
    {"name": "Q4", "title": "probe categories", "a": "ratio_0", "b": "ratio_1", "categories": "all"},
]


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """(working directory, config file) of the finished demo study.

    Where the checkout holds a finished `make demo` study (CI runs it right before `make test`), the
    outputs the two share start this one, with Snakemake's records of them (see reuse_outputs): the
    demo model, the base model's answers, the judges, and ratio_0's and ratio_1's runs (the demo's
    homework_default and q1_support_ratio_1). Snakemake then runs the rest (ratio_1_seed7, the
    tables, the report), and anything those records show out of date, as in a fresh folder.
    """
    from snakemake_helpers import reuse_outputs, snakemake, workdir_with_config

    workdir = tmp_path_factory.mktemp("study")
    config = workdir_with_config(workdir, {"experiments": DEMO_EXPERIMENTS, "questions": DEMO_QUESTIONS})
    if (REPO / "results/tables/experiments.csv").is_file():
        reuse_outputs(REPO, workdir, config)
    snakemake(workdir, config)
    return workdir, config


# A demo model that builds in well under a minute yet answers in sentences: the studies of
# tests/workflow/test_worker_pipeline.py and tests/workflow/test_reliability_pipeline.py start from one build of it.
SMALL_DEMO_MODEL = {"seed": 1, "steps": 200, "batch_size": 32, "vocab_size": 1024, "hidden_size": 96,
                    "num_layers": 2, "num_heads": 4, "intermediate_size": 192}
# In the environment of that build: test_reliability_pipeline checks that no file holds it.
HUB_TOKEN = "secret-xyz-83f2"


def made_once(tmp_path_factory, name: str, make) -> Path:
    """The folder ``name``, made by ``make(folder)`` once per test run: under `make test`'s processes
    (pytest-xdist), the first that asks makes it while the others wait for it (a file lock)."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each process's own
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / f"{name}.made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (root / f"{name}.made").touch()
    return folder


@pytest.fixture(scope="session")
def small_demo_model(tmp_path_factory):
    """A working directory where Snakemake built (and recorded) the demo model of SMALL_DEMO_MODEL,
    with HF_TOKEN set; a study with these demo_model settings starts from it with
    snakemake_helpers.reuse_outputs(small_demo_model, workdir, config, only=("results/models/",)).
    Built once for all of `make test`'s processes."""
    from snakemake_helpers import snakemake, workdir_with_config

    def build(workdir):
        snakemake(workdir, workdir_with_config(workdir, {"demo_model": SMALL_DEMO_MODEL}), "build_demo_model",
                  env={"HF_TOKEN": HUB_TOKEN})

    return made_once(tmp_path_factory, "small_demo_model", build)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The manifest of a demo-architecture model small enough to build in seconds (not fluent)."""
    from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT
    from dpo_study.config.settings import DemoModelSettings
    from dpo_study.stages.demo_model import build_demo_model

    folder = tmp_path_factory.mktemp("tiny_model")
    build_demo_model(
        str(REPO / "data/train.json"), str(REPO / "data/test.json"), str(folder / "model"), str(folder / "model.json"),
        DemoModelSettings(seed=1, steps=5, batch_size=8, learning_rate=0.003, vocab_size=400, hidden_size=32,
                          num_layers=1, num_heads=2, intermediate_size=64),
        system_prompt=DEFAULT_SYSTEM_PROMPT,
    )
    return folder / "model.json"


def overlay(base: dict, extra: dict) -> dict:
    """``extra`` over ``base`` key by key, as `--configfile` overlays a file (a list replaces the list)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def demo_config(**overrides) -> dict:
    """config/config.yaml with config/demo.yaml over it, then ``overrides`` (whole top-level keys)."""
    import yaml

    base, demo = (yaml.safe_load((REPO / f"config/{name}.yaml").read_text()) for name in ("config", "demo"))
    return {**overlay(base, demo), **overrides}


def load_demo_study(config: dict | None = None):
    """load_study of ``config`` (by default the demo's) from the checkout, where its data paths are."""
    import os

    from dpo_study.config.study import load_study

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return load_study(config if config is not None else demo_config(),
                          [REPO / "config/demo.yaml", REPO / "config/config.yaml"])
    finally:
        os.chdir(cwd)


def default_config() -> dict:
    """An empty config with every schema default filled in (what a study's config holds unless set)."""
    from dpo_study.config.validation import validate_config

    config: dict = {}
    validate_config(config, REPO / "workflow/schemas/config.schema.yaml")
    return config


def default_settings(group, **overrides):
    """A settings group (``dpo_study.config.settings``) of the schema's defaults, with ``overrides``."""
    return group.from_config(default_config()).replace(**overrides)


@pytest.fixture
def model_folder(tiny_model, tmp_path):
    """A copy of the tiny model's folder, to change (its config, tokenizer or weights) in a test."""
    folder = tmp_path / "model"
    shutil.copytree(json.loads(tiny_model.read_text())["path"], folder)
    return folder
