"""What a run folder holds, sorted into a report's parts (net2brain_fovex.report.contents)."""
from __future__ import annotations

import numpy as np
import pytest

from net2brain_fovex.brain import encoding_files, rsa, searchlight_files
from net2brain_fovex.brain.cka import cka_to_file
from net2brain_fovex.errors import InputError
from net2brain_fovex.evaluate import evaluation
from net2brain_fovex.report.contents import GALLERY_SIZE, OTHER_TABLE, TABLE_KINDS, scan_run
from tests.brain.test_cka import write_activations
from tests.report.run_folder import IDS, run_folder

KINDS = {kind.name: kind for kind in TABLE_KINDS}


@pytest.mark.parametrize(("name", "written"), [
    ("rsa", rsa.RESULT_COLUMNS), ("searchlight", searchlight_files.SUMMARY_COLUMNS),
    ("encoding", encoding_files.SUMMARY_COLUMNS), ("partition", encoding_files.PARTITION_COLUMNS),
    ("metrics", evaluation.SUMMARY_COLUMNS), ("metric-rows", evaluation.ROW_COLUMNS),
])
def test_each_kind_is_told_by_columns_its_writer_writes(name, written):
    assert set(KINDS[name].columns) <= set(written)


def test_the_kinds_do_not_overlap():
    for kind in TABLE_KINDS:
        assert [k.name for k in TABLE_KINDS if set(k.columns) <= set(kind.columns)] == [kind.name]


@pytest.mark.parametrize("against", [True, False])
def test_cka_tables_of_both_kinds_are_told(tmp_path, against):
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(10)]
    a = write_activations(tmp_path / "a.h5", {"x": rng.normal(size=(10, 5))}, ids)
    if against:
        cka_to_file(a, tmp_path / "cka.csv", against=a)
    else:
        np.save(tmp_path / "sub-1.npy", rng.normal(size=(10, 4)))
        cka_to_file(a, tmp_path / "cka.csv", responses=[tmp_path / "sub-1.npy"], roi="IT")
    (table,) = scan_run(tmp_path).tables
    assert table.kind.name == "cka"


def test_a_run_folder_is_sorted_into_its_parts(tmp_path):
    root = run_folder(tmp_path / "run")
    contents = scan_run(root)
    with pytest.warns(RuntimeWarning) as caught:
        contents.warn()
    messages = [str(w.message) for w in caught]
    assert any("acts.h5.partial is unfinished" in m for m in messages)
    assert any("broken.csv cannot be read (not UTF-8 text)" in m for m in messages)
    kinds = {t.path.relative_to(root).as_posix(): t.kind.name for t in contents.tables}
    assert kinds == {"rsa.csv": "rsa", "searchlight/summary.csv": "searchlight",
                     "metrics.summary.csv": "metrics", "factors.csv": OTHER_TABLE.name}
    figures = {t.path.name: [p.name for p in t.figures] for t in contents.tables}
    assert figures["rsa.csv"] == ["rsa.png"] and figures["summary.csv"] == ["group_fc_mean.png"]
    (overlays,) = contents.overlays.values()
    assert {m: sorted(images) for m, images in overlays.items()} == {"fovex": ["img_1", "img_2"], "gradcam": ["img_1"]}
    assert [p.name for p in contents.galleries[root / "stimuli"]] == IDS and len(IDS) >= GALLERY_SIZE
    assert contents.figures == []
    assert sorted(p.name for p in contents.maps) == ["group_fc_mean.nii.gz", "group_fc_t.nii.gz", "sub-01_fc.nii.gz"]
    assert [d["kind"] for d in contents.data] == ["rdms"]
    assert [c["file"] for c in contents.configs] == [str(root / "rdms.config.yaml")]
    assert [p.name for p in contents.partial] == ["acts.h5.partial"]
    assert [p.name for p, _ in contents.unreadable] == ["broken.csv"]
    assert [p.name for p in contents.others] == ["notes.txt"]
    listed = {p.relative_to(root).as_posix() for p in contents.files()}
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert listed == on_disk  # every visible file, the lock left out


def test_a_few_images_are_figures_and_the_skipped_file_is_left_out(tmp_path):
    root = run_folder(tmp_path / "run")
    for name in IDS[GALLERY_SIZE - 1:]:
        (root / "stimuli" / name).unlink()  # one image short of a gallery
    (root / "report.html").write_text("<html></html>")
    contents = scan_run(root, skip=root / "report.html")
    assert contents.galleries == {} and [p.name for p in contents.figures] == IDS[:GALLERY_SIZE - 1]
    assert root / "report.html" not in contents.files()


def test_a_folder_of_images_beside_other_files_is_not_a_gallery(tmp_path):
    root = run_folder(tmp_path / "run")
    (root / "stimuli" / "list.txt").write_text("\n".join(IDS))
    contents = scan_run(root)
    assert contents.galleries == {} and len(contents.figures) == len(IDS)


def test_only_foreign_files_are_nothing_to_report(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert not scan_run(tmp_path).reportable()
    with pytest.raises(InputError, match="is a file"):
        scan_run(tmp_path / "notes.txt")
