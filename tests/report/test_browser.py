"""The report page in a real browser (Chromium, headless, from the system packages):
it loads without console messages, every image decodes, and a screenshot is not blank.
Opt-in (`-m slow`); skipped without Chromium (`apt-get install chromium`)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.report.page import report_to_file
from tests.report.run_folder import run_folder

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
                None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium"),
              pytest.mark.filterwarnings("ignore:.*the report lists it:RuntimeWarning")]
# counts the decoded images once the page has loaded, into the title --dump-dom shows
PROBE = ("<script>addEventListener('load', () => { const all = [...document.images]; document.title = "
         "'decoded ' + all.filter(i => i.complete && i.naturalWidth > 0).length + ' of ' + all.length; });</script>")


def chromium(page: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *flags, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def check_in_browser(page: Path, tmp_path: Path) -> None:
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    loaded = chromium(probe, "--dump-dom")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "CONSOLE" not in loaded.stderr, [line for line in loaded.stderr.splitlines() if "CONSOLE" in line]
    decoded, total = map(int, re.search(r"<title>decoded (\d+) of (\d+)</title>", loaded.stdout).groups())
    assert total == page.read_text().count("<img ") and decoded == total > 0
    shot = tmp_path / "screenshot.png"
    taken = chromium(page, f"--screenshot={shot}", "--window-size=1280,1600")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1280) and pixels.std() > 10  # text, tables and figures, not one colour
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_the_report_of_a_run_folder_loads_in_a_browser(tmp_path):
    page, _ = report_to_file(run_folder(tmp_path / "run"))
    check_in_browser(page, tmp_path)


def test_the_reports_of_both_demos_load_in_a_browser(net2brain_demo, fovex_demo, tmp_path):
    for demo in (net2brain_demo, fovex_demo):
        page, _ = report_to_file(demo.folder, tmp_path / f"{demo.folder.parent.name}.html")
        check_in_browser(page, tmp_path)
