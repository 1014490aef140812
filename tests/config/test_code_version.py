"""The code hash each rule carries in its params: what changes it and what does not."""

import os
from pathlib import Path

import pytest

from conftest import REPO
from dpo_study.config import provenance
from dpo_study.config.provenance import code_version, imported_code


@pytest.fixture
def package(tmp_path):
    """A package ``pkg`` (a -> b -> c, d unused) and a workflow script that runs pkg.a."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "a.py").write_text("from pkg.b import double\n\n\ndef run(x):\n    import numpy\n    return double(x)\n")
    (root / "b.py").write_text("from pkg import c\nimport os\nfrom tqdm import tqdm\n\n\ndef double(x):\n"
                               "    return c.scale * x\n")
    (root / "c.py").write_text('"""Settings."""\n\nscale = 2  # the factor\n')
    (root / "d.py").write_text("unused = 1\n")
    script = tmp_path / "run.py"
    script.write_text("from pkg.a import run\n\nrun(1)\n")
    return root, script


def test_the_walk_follows_package_imports_transitively_and_records_libraries(package):
    root, script = package
    modules, libraries = imported_code(script, root)
    assert set(modules) == {"script", "pkg.a", "pkg.b", "pkg.c"}
    assert libraries == {"numpy"}  # imported inside a function; os is stdlib, tqdm shapes no result


def test_touch_comment_docstring_and_layout_keep_the_hash(package):
    root, script = package
    before = code_version(script, root)
    os.utime(root / "c.py", (1, 1))
    os.utime(script, None)
    assert code_version(script, root) == before
    (root / "c.py").write_text('"""Other words."""\n\n\nscale = (\n    2\n)  # a comment\n')
    assert code_version(script, root) == before


def test_a_code_edit_in_an_imported_module_changes_the_hash(package):
    root, script = package
    before = code_version(script, root)
    (root / "c.py").write_text('"""Settings."""\n\nscale = 3  # the factor\n')
    assert code_version(script, root) != before


def test_an_edit_in_a_module_not_imported_keeps_the_hash(package):
    root, script = package
    before = code_version(script, root)
    (root / "d.py").write_text("unused = 2\n")
    assert code_version(script, root) == before


def test_a_library_version_changes_the_hash(package, monkeypatch):
    root, script = package
    before = code_version(script, root)
    real = provenance.distribution_version
    monkeypatch.setattr(provenance, "distribution_version",
                        lambda name: "numpy==0.0" if name == "numpy" else real(name))
    assert code_version(script, root) != before


def test_the_workflow_scripts_hash_the_stage_modules_they_run():
    scripts = REPO / "workflow/scripts"
    train, _ = imported_code(scripts / "train_adapter.py")
    judge, _ = imported_code(scripts / "judge_responses.py")
    tables, libraries = imported_code(scripts / "write_tables.py")
    assert {"dpo_study.stages.train", "dpo_study.runtime.backends", "dpo_study.runtime.modeling"} <= set(train)
    assert "dpo_study.analysis.metrics" not in train  # editing the text measures does not retrain
    assert "dpo_study.analysis.statistics" not in train  # nor the report's statistics
    assert "dpo_study.analysis.metrics" in judge and "dpo_study.analysis.metrics" in tables
    assert "pandas" in libraries
    assert all(isinstance(path, Path) and path.is_file() for path in train.values())


def test_the_code_hash_reaches_snakemake_but_not_the_stage():
    from types import SimpleNamespace

    from dpo_study.runtime.smk import stage_kwargs

    smk = SimpleNamespace(input={"prompts": "p.jsonl"}, output={"responses": "r.jsonl"},
                          params={"generation": {}, "code": "0123abcd"}, threads=1)
    assert stage_kwargs(smk) == {"prompts": "p.jsonl", "responses": "r.jsonl", "generation": {}, "threads": 1}


def test_how_a_job_runs_is_not_part_of_its_code():
    """The bridge, the GPU worker and the allocator decide where a stage runs, not what it computes."""
    train, _ = imported_code(REPO / "workflow/scripts/train_adapter.py")
    assert not {"dpo_study.runtime.smk", "dpo_study.runtime.worker", "dpo_study.runtime.worker_process", "dpo_study.runtime.gpus"} & set(train)
    assert "dpo_study.runtime.resident" in train  # the resident model is part of what the stage sees


def test_the_analysis_cache_keeps_a_dry_run_from_parsing_unchanged_code_again(tmp_path, monkeypatch):
    """Digests and imports come from the cache file for a source seen before, and an edited source
    is parsed again (the cache is keyed by content)."""
    from dpo_study.config import provenance

    monkeypatch.setattr(provenance, "ANALYSIS_CACHE", tmp_path / "cache" / "analysis.json")
    provenance._analysis_cache.cache_clear()
    provenance._analysis.cache_clear()
    parsed = []
    real = provenance._analyse
    monkeypatch.setattr(provenance, "_analyse", lambda *a: parsed.append(a[0]) or real(*a))
    module = tmp_path / "m.py"
    module.write_text("import json\n")
    first = provenance.code_digest(module)
    provenance._analysis_cache.cache_clear()  # a new process: only the file remains
    provenance._analysis.cache_clear()
    assert provenance.code_digest(module) == first and len(parsed) == 1
    module.write_text("import os\n")
    assert provenance.code_digest(module) != first and len(parsed) == 2
    provenance._analysis_cache.cache_clear()
    provenance._analysis.cache_clear()
