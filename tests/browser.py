"""Headless Chromium (Debian's ``chromium``) for the HTML report tests.

CI (.ci/run) installs it and exports DPO_STUDY_CI=1: there a missing browser fails the tests;
elsewhere they are skipped.
"""

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

WALK_SCRIPT = REPO / "tests" / "report_walk.js"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1400,1000"]
# Virtual time: timers in the page run as fast as the page allows, up to this budget.
VIRTUAL_MS = 60_000


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("DPO_STUDY_CI"):
        pytest.fail("chromium is not installed, and CI (DPO_STUDY_CI) needs it: .ci/run installs it")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def run_chromium(profile: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_MS}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"chromium failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def with_walk_script(report: Path, folder: Path) -> Path:
    """A copy of the report with tests/report_walk.js appended (the report itself is left as it is)."""
    copy = folder / "report_walk.html"
    text = report.read_text(encoding="utf-8")
    script = f"<script>\n{WALK_SCRIPT.read_text()}\n</script>"
    end = text.rfind("</body>")  # the page's own; earlier ones may sit inside embedded scripts
    copy.write_text(text[:end] + script + text[end:] if end >= 0 else text + script, encoding="utf-8")
    return copy


def dump_dom(page: Path, profile: Path) -> str:
    return run_chromium(profile, "--dump-dom", page.resolve().as_uri()).stdout


def walk(report: Path, folder: Path) -> dict:
    """Click through every category and result of the report; the walk's record (see report_walk.js)."""
    dom = dump_dom(with_walk_script(report, folder), folder / "profile-walk")
    found = re.findall(r'<pre id="report-walk">(.*?)</pre>', dom, re.S)
    assert found, "the walk script did not finish within the virtual time budget"
    return json.loads(html.unescape(found[-1]))


def screenshot(report: Path, folder: Path, show: str) -> Path:
    """A PNG of the report showing the first result whose path contains ``show``."""
    page = with_walk_script(report, folder)
    png = folder / f"screenshot-{re.sub(r'[^A-Za-z0-9_-]', '_', Path(show).stem)}.png"
    run_chromium(folder / "profile-shot", f"--screenshot={png}", f"{page.resolve().as_uri()}#show={show}")
    return png
