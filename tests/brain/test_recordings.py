"""Brain recordings: checking fMRI volumes and masks from their headers, ROI patterns
(non-finite voxels left out), response files of every type (and the damaged, pickled,
non-numeric, non-finite or misshapen ones refused), and brain RDMs against scipy."""
from __future__ import annotations

import logging
import re

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
from scipy.spatial.distance import pdist, squareform

from net2brain_fovex.brain.parameters import RDMParameters
from net2brain_fovex.brain.recordings import check_betas, fmri_rdms, load_responses, response_rdms, roi_patterns
from net2brain_fovex.errors import InputError

SHAPE = (4, 3, 3)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
DOUBLE = RDMParameters(precision="double")


def write(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def correlation_rdm(patterns):
    return squareform(pdist(np.asarray(patterns, dtype=np.float64), "correlation"))


@pytest.fixture
def fmri(tmp_path):
    """Two subjects' (x, y, z, 7 stimuli) volumes and two ROI masks."""
    rng = np.random.default_rng(0)
    betas = [write(tmp_path / f"sub{i}.nii.gz", rng.normal(size=(*SHAPE, 7)).astype(np.float32)) for i in (1, 2)]
    v1, v2 = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    v1[:2] = 1
    v2[2:, 1:] = 3
    masks = [write(tmp_path / "V1.nii.gz", v1), write(tmp_path / "V2.nii", v2)]
    return betas, masks


# ------------------------------------------------------------------ check_betas


def test_check_betas_returns_stimulus_count(fmri):
    betas, masks = fmri
    assert check_betas(betas, masks) == 7
    assert check_betas([str(b) for b in betas], [str(m) for m in masks]) == 7


def test_check_betas_reads_headers_only(tmp_path, fmri):
    betas, masks = fmri
    whole = write(tmp_path / "whole.nii", nib.load(str(betas[1])).get_fdata(dtype=np.float32))
    cut = tmp_path / "cut.nii"
    cut.write_bytes(whole.read_bytes()[:-200])
    assert check_betas([betas[0], cut], masks) == 7  # damaged data show when decoded
    with pytest.raises(InputError, match=rf"cannot read response volume {re.escape(str(cut))} as NIfTI"):
        roi_patterns(cut, masks)


def test_check_betas_needs_masks_and_betas(fmri):
    betas, masks = fmri
    with pytest.raises(InputError, match=r"`betas` needs at least one `mask` \(a 3D NIfTI ROI mask\)"):
        check_betas(betas, [])
    with pytest.raises(InputError, match="give at least one `betas` volume"):
        check_betas([], masks)


def test_check_betas_refuses_3d_volume(tmp_path, fmri):
    betas, masks = fmri
    flat = write(tmp_path / "flat.nii.gz", np.ones(SHAPE, np.float32))
    with pytest.raises(InputError, match=rf"response volume {re.escape(str(flat))} has 3 dimensions; expected a 4D "
                                         "volume with one volume per stimulus"):
        check_betas([betas[0], flat], masks)


def test_check_betas_refuses_other_stimulus_count(tmp_path, fmri):
    betas, masks = fmri
    short = write(tmp_path / "short.nii.gz", np.ones((*SHAPE, 6), np.float32))
    with pytest.raises(InputError, match=rf"{re.escape(str(short))} holds 6 volumes, {re.escape(str(betas[0]))} 7; "
                                         "every subject needs one volume per stimulus"):
        check_betas([betas[0], short], masks)


def test_check_betas_refuses_masks_off_the_grid_or_4d(tmp_path, fmri):
    betas, masks = fmri
    small = write(tmp_path / "small.nii.gz", np.ones((4, 3, 2), np.uint8))
    with pytest.raises(InputError, match=rf"mask {re.escape(str(small))} has shape \(4, 3, 2\), the volumes in "
                                         rf"{re.escape(str(betas[0]))} \(4, 3, 3\): resample them onto one grid"):
        check_betas(betas, [masks[0], small])
    moved = write(tmp_path / "moved.nii.gz", np.ones(SHAPE, np.uint8), affine=np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(InputError, match=rf"mask {re.escape(str(moved))} and the volumes in .* have different "
                                         "affines: resample them onto one grid"):
        check_betas(betas, [moved])
    four = write(tmp_path / "four.nii.gz", np.ones((*SHAPE, 2), np.uint8))
    with pytest.raises(InputError, match=rf"mask {re.escape(str(four))} has 4 dimensions; expected a 3D volume"):
        check_betas(betas, [four])


def test_check_betas_refuses_duplicate_mask_names(tmp_path, fmri):
    betas, masks = fmri
    (tmp_path / "other").mkdir()
    twin = write(tmp_path / "other" / "V1.nii", np.ones(SHAPE, np.uint8))
    with pytest.raises(InputError, match="two `mask` files have the same name; ROIs are named after their mask files: "
                                         "rename one"):
        check_betas(betas, [masks[0], twin])


def test_check_betas_refuses_missing_mask(tmp_path, fmri):
    betas, _ = fmri
    missing = tmp_path / "V3.nii.gz"
    with pytest.raises(InputError, match=rf"mask {re.escape(str(missing))} does not exist"):
        check_betas(betas, [missing])


# ------------------------------------------------------------------ roi_patterns


def test_roi_patterns_in_c_order(fmri):
    betas, masks = fmri
    patterns = roi_patterns(betas[0], masks)
    assert list(patterns) == ["V1", "V2"]
    data = nib.load(str(betas[0])).get_fdata(dtype=np.float32)
    for roi, mask_path in zip(["V1", "V2"], masks, strict=True):
        inside = np.asarray(nib.load(str(mask_path)).dataobj) != 0
        expected = np.stack([data[tuple(v)] for v in np.argwhere(inside)], axis=1)  # (stimuli, voxels)
        assert patterns[roi].shape == (7, int(inside.sum()))
        np.testing.assert_array_equal(patterns[roi], expected)


def test_roi_patterns_leave_out_non_finite_voxels(tmp_path, fmri, caplog):
    betas, masks = fmri
    data = nib.load(str(betas[0])).get_fdata(dtype=np.float32)
    data[0, 0, 0, 3] = np.nan
    data[1, 2, 1, 0] = np.inf
    path = write(tmp_path / "holes.nii.gz", data)
    with caplog.at_level(logging.INFO, logger="net2brain_fovex.brain.recordings"):
        patterns = roi_patterns(path, masks)
    assert patterns["V1"].shape == (7, 18 - 2) and np.isfinite(patterns["V1"]).all()
    assert patterns["V2"].shape == (7, 12)
    messages = [r.getMessage() for r in caplog.records]
    assert any("2 voxel(s) of V1 hold NaN or infinite values and are left out" in m for m in messages)
    assert not any("of V2" in m for m in messages)


def test_roi_of_only_nan_voxels_refused(tmp_path, fmri):
    betas, masks = fmri
    data = nib.load(str(betas[0])).get_fdata(dtype=np.float32)
    data[2:, 1:, :, 4] = np.nan  # every voxel of V2
    path = write(tmp_path / "holes.nii.gz", data)
    with pytest.raises(InputError, match=rf"mask {re.escape(str(masks[1]))} selects no usable voxel of "
                                         rf"{re.escape(str(path))} \(none inside, or all hold NaN or infinite values\)"):
        roi_patterns(path, masks)


# ------------------------------------------------------------------ load_responses


@pytest.fixture
def responses():
    return np.random.default_rng(1).normal(size=(6, 5))


def test_load_npy(tmp_path, responses):
    np.save(tmp_path / "r.npy", responses)
    loaded = load_responses(tmp_path / "r.npy")
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, responses)
    np.save(tmp_path / "ints.npy", np.arange(12, dtype=np.int16).reshape(4, 3))
    assert load_responses(tmp_path / "ints.npy").dtype == np.float32
    np.save(tmp_path / "half.npy", responses.astype(np.float16))
    assert load_responses(tmp_path / "half.npy").dtype == np.float32


def test_load_npz_with_and_without_key(tmp_path, responses):
    path = tmp_path / "r.npz"
    np.savez(path, first=responses, second=responses[:, :2] * 2)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))} holds 2 arrays \(first, second\); choose one with "
                                         "`key`"):
        load_responses(path)  # never the first of several
    np.testing.assert_array_equal(load_responses(path, key="second"), responses[:, :2] * 2)
    np.savez(tmp_path / "one.npz", only=responses)
    np.testing.assert_array_equal(load_responses(tmp_path / "one.npz"), responses)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))} has no array 'third'; it holds first, second"):
        load_responses(path, key="third")
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    with pytest.raises(InputError, match="holds no array; save the responses in it"):
        load_responses(empty)


def test_load_mat(tmp_path, responses):
    path = tmp_path / "r.mat"
    scipy.io.savemat(path, {"label": "faces", "volume": np.zeros((2, 2, 2, 2)), "resp": responses,
                            "other": responses[:3]})
    with pytest.raises(InputError, match=r"holds 2 numeric arrays \(resp, other\); choose one with `key`"):
        load_responses(path)
    only = tmp_path / "only.mat"
    scipy.io.savemat(only, {"label": "faces", "volume": np.zeros((2, 2, 2, 2)), "resp": responses})
    np.testing.assert_array_equal(load_responses(only), responses)  # the only numeric 2D or 3D array
    np.testing.assert_array_equal(load_responses(path, key="other"), responses[:3])
    with pytest.raises(InputError, match=rf"{re.escape(str(path))} has no variable 'resps'; it holds label, volume"):
        load_responses(path, key="resps")
    with pytest.raises(InputError, match=r"responses must be numbers shaped \(stimuli, channels\) or "
                                         r"\(stimuli, channels, time\), got .*\(2, 2, 2, 2\)"):
        load_responses(path, key="volume")
    none = tmp_path / "none.mat"
    scipy.io.savemat(none, {"label": "faces", "volume": np.zeros((2, 2, 2, 2))})
    with pytest.raises(InputError, match=r"holds no numeric \(stimuli, channels\[, time\]\) array; it holds "
                                         "label, volume"):
        load_responses(none)


def test_load_h5(tmp_path, responses):
    one = tmp_path / "one.h5"
    with h5py.File(one, "w") as file:
        file["group/resp"] = responses
    np.testing.assert_array_equal(load_responses(one), responses)
    several = tmp_path / "several.hdf5"
    with h5py.File(several, "w") as file:
        file["a"] = responses
        file["group/b"] = responses[:, :3]
    with pytest.raises(InputError, match=rf"{re.escape(str(several))} holds 2 datasets \(a, group/b\); choose one "
                                         "with `key`"):
        load_responses(several)
    np.testing.assert_array_equal(load_responses(several, key="group/b"), responses[:, :3])
    with pytest.raises(InputError, match=r"has no dataset 'group'; it holds a, group/b"):
        load_responses(several, key="group")
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(InputError, match=r"holds no dataset; save the responses in it"):
        load_responses(empty)


def test_missing_and_unsupported_files_refused(tmp_path, responses):
    with pytest.raises(InputError, match=r"response file .*r.npy does not exist"):
        load_responses(tmp_path / "r.npy")
    text = tmp_path / "r.csv"
    text.write_text("1,2\n3,4\n")
    with pytest.raises(InputError, match=r"response file .*r.csv: unsupported type; use .npy, .npz, .mat, .h5, .hdf5"):
        load_responses(text)


def test_pickled_object_arrays_refused(tmp_path):
    objects = np.array([{"a": 1}, {"b": 2}], dtype=object)
    np.save(tmp_path / "o.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "o.npz", x=objects)
    for name in ("o.npy", "o.npz"):
        with pytest.raises(InputError, match=rf"cannot read response file .*{name}: .*; save plain numeric arrays "
                                             r"\(pickled objects are refused\)"):
            load_responses(tmp_path / name)


@pytest.mark.parametrize("values", [np.array([["a", "b"], ["c", "d"]]), np.ones((3, 2), bool),
                                    np.ones((3, 2), complex)], ids=["strings", "bool", "complex"])
def test_non_numeric_refused(tmp_path, values):
    np.save(tmp_path / "r.npy", values)
    with pytest.raises(InputError, match=rf"responses must be numbers .*, got {re.escape(str(values.dtype))} \(.*\)"):
        load_responses(tmp_path / "r.npy")


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4, 5)])
def test_wrong_dimensions_refused(tmp_path, shape):
    np.save(tmp_path / "r.npy", np.ones(shape))
    with pytest.raises(InputError, match=rf"shaped \(stimuli, channels\) or \(stimuli, channels, time\), got float64 "
                                         rf"{re.escape(str(shape))}"):
        load_responses(tmp_path / "r.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(tmp_path, responses, bad):
    responses[2, 3] = bad
    with h5py.File(tmp_path / "r.h5", "w") as file:
        file["x"] = responses
    with pytest.raises(InputError, match=r"r.h5 holds NaN or infinite responses; remove or impute them first"):
        load_responses(tmp_path / "r.h5")


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".mat"])
def test_truncated_files_refused(tmp_path, responses, suffix):
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".npy":
        np.save(whole, responses)
    elif suffix == ".h5":
        with h5py.File(whole, "w") as file:
            file["x"] = responses
    else:
        scipy.io.savemat(whole, {"x": responses})
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    with pytest.raises(InputError, match=rf"cannot read response file {re.escape(str(cut))}: "):
        load_responses(cut)


# Damaged or unreadable files that the libraries report in their own ways (a truncated
# .npz: zipfile.BadZipFile; an empty .mat: scipy's MatReadError; a MATLAB v7.3 .mat:
# NotImplementedError) are InputErrors too.
def test_truncated_npz_refused(tmp_path, responses):
    whole = tmp_path / "whole.npz"
    np.savez(whole, x=responses)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    with pytest.raises(InputError, match=re.escape(str(cut))):
        load_responses(cut)


def test_empty_mat_refused(tmp_path):
    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=re.escape(str(empty))):
        load_responses(empty)


def test_matlab_v73_file_refused(tmp_path, responses):
    path = tmp_path / "v73.mat"  # MATLAB's -v7.3 format: HDF5 behind a 512-byte MATLAB header
    with h5py.File(path, "w", userblock_size=512) as file:
        file["x"] = responses
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    with pytest.raises(InputError, match=re.escape(str(path))):
        load_responses(path)


# ------------------------------------------------------------------ RDMs


def test_fmri_rdms_against_scipy(fmri):
    betas, masks = fmri
    calls = []
    rdms = fmri_rdms(betas, masks, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    assert sorted(rdms) == ["V1", "V2"]
    double = fmri_rdms(betas, masks, parameters=DOUBLE)
    for subject, path in enumerate(betas):
        patterns = roi_patterns(path, masks)
        for roi in ("V1", "V2"):
            expected = correlation_rdm(patterns[roi])
            assert rdms[roi].shape == (2, 7, 7) and rdms[roi].dtype == np.float32
            np.testing.assert_allclose(rdms[roi][subject], expected, atol=1e-5)
            np.testing.assert_allclose(double[roi][subject], expected, atol=1e-12)


def test_fmri_rdms_euclidean(fmri):
    betas, masks = fmri
    rdms = fmri_rdms(betas, masks, parameters=RDMParameters(metric="euclidean", precision="double"))
    patterns = roi_patterns(betas[1], masks)["V2"]
    np.testing.assert_allclose(rdms["V2"][1], squareform(pdist(patterns.astype(np.float64))), atol=1e-10)


def test_fmri_rdms_checks_headers_first(tmp_path, fmri):
    betas, masks = fmri
    short = write(tmp_path / "short.nii.gz", np.ones((*SHAPE, 6), np.float32))
    with pytest.raises(InputError, match="holds 6 volumes, .* 7; every subject needs one volume per stimulus"):
        fmri_rdms([*betas, short], masks, progress=lambda *_: pytest.fail("work started before the checks"))


def test_response_rdms_against_scipy(tmp_path):
    rng = np.random.default_rng(2)
    subjects = [rng.normal(size=(8, 5)), rng.normal(size=(8, 9))]  # channels may differ between subjects
    files = []
    for index, values in enumerate(subjects):
        np.save(tmp_path / f"s{index}.npy", values)
        files.append(tmp_path / f"s{index}.npy")
    calls = []
    rdms = response_rdms(files, parameters=DOUBLE, progress=lambda done, total: calls.append((done, total)))
    assert rdms.shape == (2, 8, 8) and calls == [(1, 2), (2, 2)]
    for index, values in enumerate(subjects):
        np.testing.assert_allclose(rdms[index], correlation_rdm(values), atol=1e-12)
    single = response_rdms(files)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, rdms, atol=1e-5)


def test_response_rdms_time_resolved(tmp_path):
    rng = np.random.default_rng(3)
    subjects = [rng.normal(size=(6, 4, 3)) for _ in range(2)]  # (stimuli, channels, time)
    files = []
    for index, values in enumerate(subjects):
        path = tmp_path / f"meg{index}.npz"
        np.savez(path, meg=values, other=np.zeros((2, 2)))
        files.append(path)
    rdms = response_rdms(files, key="meg", parameters=DOUBLE)
    assert rdms.shape == (2, 3, 6, 6)
    for s, values in enumerate(subjects):
        for t in range(3):
            np.testing.assert_allclose(rdms[s, t], correlation_rdm(values[..., t]), atol=1e-12)


def test_response_rdms_refuses_other_shapes(tmp_path):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "a.npy", rng.normal(size=(6, 4)))
    np.save(tmp_path / "b.npy", rng.normal(size=(5, 4)))
    np.save(tmp_path / "c.npy", rng.normal(size=(6, 4, 2)))
    np.save(tmp_path / "d.npy", rng.normal(size=(6, 4, 3)))
    np.save(tmp_path / "e.npy", rng.normal(size=(6, 9)))  # other channels: fine
    np.save(tmp_path / "one.npy", rng.normal(size=(1, 4)))
    np.save(tmp_path / "empty.npy", np.zeros((6, 0)))
    for other, shape in (("b", r"\(5, 4\)"), ("c", r"\(6, 4, 2\)")):
        with pytest.raises(InputError, match=rf"{other}.npy holds responses of shape {shape}; the first subject's "
                                             r"\(.*a.npy\) had shape \(6, 4\): every subject needs the same stimuli"):
            response_rdms([tmp_path / "a.npy", tmp_path / f"{other}.npy"])
    with pytest.raises(InputError, match=r"d.npy holds responses of shape \(6, 4, 3\); the first subject's .* had shape "
                                         r"\(6, 4, 2\)"):  # other time points
        response_rdms([tmp_path / "c.npy", tmp_path / "d.npy"])
    assert response_rdms([tmp_path / "a.npy", tmp_path / "e.npy"]).shape == (2, 6, 6)
    for name in ("one", "empty"):
        with pytest.raises(InputError, match=rf"{name}.npy holds responses of shape .*; an RDM needs at least 2 stimuli"):
            response_rdms([tmp_path / f"{name}.npy"])
    with pytest.raises(InputError, match="give at least one `responses` file"):
        response_rdms([])
