"""`net2brain report` and `fovex report`: the page of a run folder, through the command line."""
from __future__ import annotations

import pytest

from tests.report.run_folder import IDS, run_folder
from tests.report.test_page import check_page


def test_net2brain_report_writes_the_page_and_warns_of_what_it_cannot_show(net2brain, tmp_path):
    root = run_folder(tmp_path / "run")
    result = net2brain("report", root)
    assert result.code == 0, result
    assert f"wrote {root / 'report.html'}: 4 tables" in result.err
    assert "warning:" in result.err and "acts.h5.partial is unfinished" in result.err
    assert "broken.csv cannot be read (not UTF-8 text)" in result.err
    check_page(root / "report.html", root)
    again = net2brain("report", root)
    assert again.code == 2 and "exists already; add --overwrite" in again.err


def test_fovex_report_takes_an_output_a_title_and_a_cap_on_images(fovex, tmp_path):
    root = run_folder(tmp_path / "run")
    out = tmp_path / "pages" / "run.html"
    result = fovex("report", root, "--out", out, "--title", "lab meeting", "--max-images", 2)
    assert result.code == 0, result
    text = out.read_text()
    assert "<title>lab meeting</title>" in text and f"the first 2 of {len(IDS)} images" in text
    check_page(out, root, every_image=False)


def test_the_report_of_the_net2brain_demo_shows_every_figure(net2brain, net2brain_demo, tmp_path):
    out = tmp_path / "demo.html"
    result = net2brain("report", net2brain_demo.folder, "--out", out)
    assert result.code == 0, result
    page = check_page(out, net2brain_demo.folder)
    for section in ("provenance", "rsa", "searchlight", "encoding", "stimuli", "maps", "files"):
        assert section in page.ids
    text = out.read_text()
    assert "net2brain demo --out" in text  # what was run
    # a montage of each group map (searchlight 6, encoding 6, partition 18) and of the two
    # ROI masks of the encoding volumes (a folder without group maps); the 4D volumes none
    assert sum(i["title"].endswith(".nii.gz") for i in page.images) == 32


@pytest.mark.slow  # the fovex demo trains its model and runs every method: minutes
def test_the_report_of_the_fovex_demo_shows_the_methods_side_by_side(fovex, fovex_demo, tmp_path):
    out = tmp_path / "demo.html"
    result = fovex("report", fovex_demo.folder, "--out", out)
    assert result.code == 0, result
    page = check_page(out, fovex_demo.folder)
    assert {"evaluation", "explanations", "stimuli"} <= set(page.ids)
    methods = sorted(p.name for p in (fovex_demo.folder / "overlays").iterdir())
    text = out.read_text()
    assert all(f"<th>{method}</th>" in text for method in methods)
    assert "fovex demo --out" in text and "auc_judd" in text
