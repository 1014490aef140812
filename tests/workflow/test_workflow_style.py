"""The workflow passes Snakemake's linter and is formatted as snakefmt formats it (CI runs this)."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO
from snakemake_helpers import snakemake, workdir_with_config


def test_snakemake_lint_is_clean(tmp_path):
    config = workdir_with_config(tmp_path, {})
    result = snakemake(tmp_path, config, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Lints for" not in output, output


def test_snakefmt_check_is_clean():
    snakefmt = Path(sys.executable).with_name("snakefmt")  # from the `test` extra
    result = subprocess.run([str(snakefmt), "--check", "--diff", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
