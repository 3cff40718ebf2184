"""Memory estimates: what is available, and runs refused before they allocate."""
from __future__ import annotations

import numpy as np
import pytest

from net2brain_fovex import memory
from net2brain_fovex.brain.searchlight import searchlight_memory, sphere_offsets
from net2brain_fovex.errors import ConfigError
from net2brain_fovex.memory import available_bytes, check_memory, format_bytes

GIB = 2**30


def meminfo(tmp_path, kilobytes: int):
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       99999999 kB\nMemFree:        1 kB\nMemAvailable:   {kilobytes} kB\n")
    return str(path)


def cgroup(tmp_path, limit: str, usage: int):
    (tmp_path / "memory.max").write_text(limit + "\n")
    (tmp_path / "memory.current").write_text(f"{usage}\n")
    return ((str(tmp_path / "memory.max"), str(tmp_path / "memory.current")),)


def test_available_memory_is_memavailable_within_the_cgroup_limit(tmp_path):
    info = meminfo(tmp_path, 8 * 2**20)  # 8 GiB
    assert available_bytes(info, ()) == 8 * GIB
    assert available_bytes(info, cgroup(tmp_path, str(3 * GIB), GIB)) == 2 * GIB  # a job limited to 3 GiB using 1
    assert available_bytes(info, cgroup(tmp_path, "max", GIB)) == 8 * GIB  # cgroup v2 without a limit
    assert available_bytes(info, cgroup(tmp_path, str(GIB), 2 * GIB)) == 0  # over its limit already
    assert available_bytes(info, ((str(tmp_path / "none"), str(tmp_path / "none")),)) == 8 * GIB


def test_available_memory_of_this_machine_is_positive_and_within_its_total():
    total = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < available_bytes() <= total


@pytest.mark.parametrize(("count", "text"), [(1536, "2 kB"), (300 * 2**20, "300.0 MB"), (1.5 * GIB, "1.5 GB"),
                                             (2 * 2**40, "2.0 TB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_check_memory_says_what_needs_how_much_and_how_to_need_less(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: GIB)
    check_memory(GIB, what="x", lower="y")  # exactly what is there: allowed
    with pytest.raises(ConfigError, match=r"^the sphere table needs about 2.0 GB of memory, but 1.0 GB are available; "
                                          r"lower `radius`$"):
        check_memory(2 * GIB, what="the sphere table", lower="lower `radius`")


def test_searchlight_estimate_covers_the_sphere_and_grows_with_radius_and_batch():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    options = dict(stimuli=20, subjects=2, layers=3, precision="single")
    small = searchlight_memory((10, 10, 10), affine, 4, batch_size=64, **options)
    assert searchlight_memory((10, 10, 10), affine, 8, batch_size=64, **options) > small
    assert searchlight_memory((10, 10, 10), affine, 4, batch_size=512, **options) > small
    assert searchlight_memory((10, 10, 10), affine, 4, batch_size=64, **{**options, "precision": "double"}) > small
    # the sphere patterns of one batch (int64 indices, float32 patterns) are counted in full
    sphere = len(sphere_offsets(affine, 4))
    assert small >= 64 * sphere * (8 + 20 * 4) + 1000 * 20 * 4
    # a radius of 200 mm on 0.5 mm voxels: a sphere table of (2 * 401 + 1)^3 offsets alone
    assert searchlight_memory((10, 10, 10), np.diag([0.5, 0.5, 0.5, 1]), 200, batch_size=64, **options) > 803**3 * 8


def test_runs_are_refused_before_they_allocate(monkeypatch, tmp_path):
    """Through the core: the searchlight from the volumes' header, extraction and
    explanation after one probe of the model, RDMs from the stimulus count."""
    import nibabel as nib

    from net2brain_fovex.brain.rdm_files import rdms_to_file
    from net2brain_fovex.brain.searchlight import run_searchlight
    from net2brain_fovex.explain.attributions import explain_to_file
    from net2brain_fovex.extraction.activations import extract_to_file
    from tests.conftest import factory, write_images

    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.normal(size=(4, 4, 4, 5)).astype(np.float32), np.eye(4)), tmp_path / "sub.nii.gz")
    images = write_images(tmp_path / "images", 3, size=20)
    extract_to_file(factory("tiny_cnn"), images, tmp_path / "acts.h5", weights="random", image_size=16)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    model = {"a": np.ones((5, 5)) - np.eye(5)}
    with pytest.raises(ConfigError, match=r"a searchlight of radius 3 mm over a 4 x 4 x 4 grid needs about .* but 1 kB "
                                          r"are available; lower `batch_size` or `radius`"):
        run_searchlight([tmp_path / "sub.nii.gz"], model, 3)
    with pytest.raises(ConfigError, match=r"extracting \d+ layer\(s\) of 32 stimuli at a time needs about .* lower "
                                          r"`batch_size` \(or `image_size`, or keep fewer `layers`\)"):
        extract_to_file(factory("tiny_cnn"), images, tmp_path / "again.h5", weights="random", image_size=16)
    with pytest.raises(ConfigError, match=r"gradcam on 8 image\(s\) of 32 x 32 at a time needs about .* lower `batch_size`"):
        explain_to_file(factory("tiny_cnn"), images, tmp_path / "maps.h5", weights="random", image_size=32,
                        method="gradcam", batch_size=8)
    with pytest.raises(ConfigError, match=r"\d+ RDM\(s\) of 3 stimuli needs about .* choose fewer `layers` per run"):
        rdms_to_file(tmp_path / "rdms.h5", activations=tmp_path / "acts.h5")
    assert not (tmp_path / "again.h5").exists() and not (tmp_path / "maps.h5").exists()
    assert not (tmp_path / "rdms.h5").exists()
