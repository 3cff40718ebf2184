"""The HTML report of a run folder (net2brain_fovex.report.page)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.errors import ConfigError, InputError, OutputError
from net2brain_fovex.figures.montage import MONTAGE_SIZE, montage_slices, slice_montage
from net2brain_fovex.report.contents import IMAGE_SUFFIXES
from net2brain_fovex.report.page import MAX_ROWS, SECTIONS, report_to_file
from tests.report.run_folder import IDS, Page, decode, run_folder

pytestmark = pytest.mark.filterwarnings("ignore:.*the report lists it:RuntimeWarning")


def images_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}


def check_page(path: Path, root: Path, *, every_image: bool = True) -> Page:
    """Every link resolves to a file or folder beside the page, every image of the folder
    is embedded (by its title; unless not `every_image`) and decodes, nothing is fetched from elsewhere, and the
    navigation bar points at the page's sections."""
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert not re.search(r"""(src|href)="(https?:|//)""", text) and "<script" not in text and "<link" not in text
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids, link
        else:
            assert (path.parent / unquote(link)).exists(), link
    titles = {image["title"] for image in page.images}
    folder = Path(os.path.relpath(root, path.parent)).as_posix()
    if every_image:
        assert {(Path(folder) / name).as_posix() for name in images_of(root)} <= titles
    for image in page.images:
        assert decode(image).size[0] > 0
    assert [link for link in page.links if link.startswith("#")][:2] == ["#overview", "#provenance"]
    return page


def test_the_page_shows_every_part_of_the_run(tmp_path):
    root = run_folder(tmp_path / "run")
    path, contents = report_to_file(root)
    assert path == root / "report.html" and path.read_text().startswith("<!DOCTYPE html>")
    page = check_page(path, root)
    for section in ("overview", "provenance", "rsa", "searchlight", "evaluation", "explanations", "stimuli",
                    "maps", "tables", "files"):
        assert section in page.ids, section
    text = path.read_text()
    assert "0.6123" in text and "0.61234567" not in text  # numbers to 4 significant digits
    assert "acts.h5.partial" in text and "broken.csv</a> (not UTF-8 text)" in text
    # the best mean of each metric in bold, every method of a tie
    assert sorted(page.bold) == ["0.3 ± 0.1", "0.3 ± 0.1", "2 ± 0.1"]
    # the group maps without a picture get a montage; the pictured map and the subject map do not
    montages = [i["title"] for i in page.images if i["title"].endswith(".nii.gz")]
    assert montages == ["searchlight/group_fc_t.nii.gz"]
    # the stimulus folder as thumbnails no larger than 96 pixels
    thumbs = [decode(i) for i in page.images if i["title"].startswith("stimuli/")]
    assert len(thumbs) == len(IDS) and max(max(t.size) for t in thumbs) <= 96
    # the overlays grid: a row per image, a column per method, an empty cell for the missing overlay
    assert re.search(r"<tr><th>img_2</th><td><img [^>]*title=\"overlays/fovex/img_2.png\"></td><td></td></tr>", text)
    assert "report.html" not in {Path(unquote(link)).name for link in page.links}


def test_a_page_elsewhere_links_back_into_the_folder(tmp_path):
    root = run_folder(tmp_path / "run")
    path, _ = report_to_file(root, tmp_path / "pages" / "run.html", title="my run")
    assert "<title>my run</title>" in path.read_text()
    check_page(path, root)


def test_long_tables_and_many_images_are_cut_with_a_note(tmp_path):
    root = run_folder(tmp_path / "run")
    (root / "factors.csv").write_text("stimulus,category\n" + "".join(f"s{i},a\n" for i in range(MAX_ROWS + 5)))
    path, _ = report_to_file(root, max_images=3)
    text = path.read_text()
    assert f"the first {MAX_ROWS} of {MAX_ROWS + 5} rows" in text and f"<td>s{MAX_ROWS - 1}</td>" in text
    assert f"<td>s{MAX_ROWS}</td>" not in text
    assert f"the first 3 of {len(IDS)} images" in text
    with pytest.raises(ConfigError, match="max_images"):
        report_to_file(root, max_images=0, overwrite=True)


def test_nothing_to_report_and_outputs_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="holds nothing to report"):
        report_to_file(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        report_to_file(tmp_path / "gone")
    root = run_folder(tmp_path / "run")
    report_to_file(root)
    before = (root / "report.html").read_bytes()
    with pytest.raises(OutputError, match="exists already"):
        report_to_file(root)
    with pytest.raises(OutputError):
        report_to_file(root, root / "report.txt")
    assert (root / "report.html").read_bytes() == before and not (root / "report.txt").exists()
    report_to_file(root, overwrite=True)
    assert "report.html" not in (root / "report.html").read_text().split('id="files"')[1]


def test_every_table_kind_has_a_section():
    from net2brain_fovex.report.contents import TABLE_KINDS

    assert {kind.section for kind in TABLE_KINDS} <= set(SECTIONS)


def test_the_montage_is_drawn_from_the_slices_that_hold_the_map():
    volume = np.full((5, 6, 20), np.nan)
    volume[:, :, 4:12] = np.arange(8)[None, None, :] - 3.0
    slices = montage_slices(volume)
    assert slices[0] == 4 and slices[-1] == 11 and len(slices) == 8
    assert montage_slices(np.zeros((4, 4, 3))) == [0, 1, 2]
    picture = Image.open(__import__("io").BytesIO(slice_montage(volume, title="t")))
    assert picture.format == "PNG" and picture.size == MONTAGE_SIZE
    with pytest.raises(ValueError, match="3D map"):
        slice_montage(np.zeros((3, 3, 3, 2)), title="4D")


def test_a_damaged_map_is_noted_and_a_volume_of_responses_is_listed_only(tmp_path):
    root = run_folder(tmp_path / "run")
    (root / "searchlight" / "group_fc_t.nii.gz").write_bytes(b"not a volume")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), root / "volumes.nii.gz")
    path, _ = report_to_file(root)
    text = path.read_text()
    assert "group_fc_t.nii.gz</a>: cannot be read" in text
    assert 'href="volumes.nii.gz"' in text and 'title="volumes.nii.gz"' not in text
