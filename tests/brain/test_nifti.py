"""NIfTI files: ROI names, reading headers and volumes (missing, folder, damaged),
dimension and grid checks, masks, usable voxels, writing maps atomically, and headers
stored as bytes and rebuilt."""
from __future__ import annotations

import errno
import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from net2brain_fovex.brain import nifti
from net2brain_fovex.brain.nifti import (
    check_dimensions,
    check_same_grid,
    header_bytes,
    image_from_header,
    load_mask,
    load_nifti,
    load_volume,
    masked_responses,
    nifti_header,
    roi_name,
    save_binary,
    save_map,
    usable_voxels,
    usable_voxels_of,
)
from net2brain_fovex.errors import InputError, OutputError

SHAPE = (4, 5, 3)
AFFINE = np.array([[2.0, 0.1, 0.0, -10.0], [0.0, 2.0, 0.2, -20.0], [0.05, 0.0, 2.5, 5.0], [0.0, 0.0, 0.0, 1.0]])


def write(path, data, affine=AFFINE, header=None):
    nib.save(nib.Nifti1Image(np.asarray(data), affine, header=header), str(path))
    return path


@pytest.fixture
def series():
    """(x, y, z, stimuli) float32 responses."""
    return np.random.default_rng(0).normal(size=(*SHAPE, 6)).astype(np.float32)


@pytest.fixture
def reference(tmp_path, series):
    return nib.load(str(write(tmp_path / "betas.nii.gz", series)))


def files(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ names and reading


def test_roi_name():
    assert roi_name(Path("masks/V1.nii.gz")) == "V1"
    assert roi_name(Path("V2.nii")) == "V2"
    assert roi_name(Path("left.FFA.nii.gz")) == "left.FFA"
    assert roi_name(Path("LOC.img")) == "LOC"


def test_missing_file_and_folder_refused(tmp_path):
    missing = tmp_path / "nothing.nii.gz"
    for read in (nifti_header, load_nifti):
        with pytest.raises(InputError, match=rf"mask {re.escape(str(missing))} does not exist; give a NIfTI file"):
            read(missing, "mask")
        with pytest.raises(InputError, match=rf"response volume {re.escape(str(tmp_path))} is a folder; give a NIfTI"):
            read(tmp_path, "response volume")


@pytest.mark.parametrize("name", ["garbage.nii", "garbage.nii.gz"])
def test_not_nifti_refused_with_path(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not a nifti file " * 40)
    with pytest.raises(InputError, match=rf"cannot read mask {re.escape(str(path))} as NIfTI: .*; replace the file"):
        nifti_header(path, "mask")


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_file_fails_when_decoded(tmp_path, name):
    series = np.random.default_rng(2).normal(size=(8, 8, 8, 6)).astype(np.float32)  # the cut falls in the data
    whole = write(tmp_path / f"whole{name[3:]}", series)
    raw = whole.read_bytes()
    path = tmp_path / name
    path.write_bytes(raw[: len(raw) // 2])
    assert nifti_header(path, "response volume").shape == series.shape  # the header alone reads
    with pytest.raises(InputError, match=rf"cannot read response volume {re.escape(str(path))} as NIfTI: .*; replace"):
        load_nifti(path, "response volume")
    with pytest.raises(InputError, match=rf"cannot read response volume {re.escape(str(path))} as NIfTI: .*; replace"):
        load_volume(path, stimuli=6)  # a .nii.gz series is decompressed by ISA-L, not by nibabel's gzip


@pytest.mark.parametrize("name", ["scaled.nii", "scaled.nii.gz"])
@pytest.mark.parametrize("dtype", ["<i2", ">i2", ">f4"])
def test_load_volume_reads_as_nibabel_does(tmp_path, name, dtype):
    """Scaled integers and big-endian data: the values of nibabel's `get_fdata(float32)`."""
    values = np.random.default_rng(3).normal(size=(*SHAPE, 6)) * 300
    stored = values.astype(dtype)
    image = nib.Nifti1Image(stored, AFFINE)
    slope, intercept = (0.37, -2.5) if dtype.endswith("i2") else (1.0, 0.0)
    image.header.set_slope_inter(slope, intercept)
    nib.save(image, str(tmp_path / name))
    expected = nib.load(str(tmp_path / name)).get_fdata(dtype=np.float32)
    np.testing.assert_allclose(expected, stored * slope + intercept, rtol=1e-6)
    data = load_volume(tmp_path / name, stimuli=6).data
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, expected)


def test_load_nifti_reads_good_file(tmp_path, series):
    image = load_nifti(write(tmp_path / "b.nii", series), "response volume")
    np.testing.assert_array_equal(image.get_fdata(dtype=np.float32), series)


# ------------------------------------------------------------------ dimensions and grids


def test_check_dimensions_messages(series):
    series_image = nib.Nifti1Image(series, AFFINE)
    mask_image = nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE)
    check_dimensions(series_image, 4, "response volume b.nii")
    check_dimensions(mask_image, 3, "mask V1.nii.gz")
    with pytest.raises(InputError, match=r"^mask V1.nii.gz has 4 dimensions; expected a 3D volume$"):
        check_dimensions(series_image, 3, "mask V1.nii.gz")
    with pytest.raises(InputError, match=r"^response volume b.nii has 3 dimensions; expected a 4D volume with one "
                                         r"volume per stimulus$"):
        check_dimensions(mask_image, 4, "response volume b.nii")


def test_check_same_grid(series):
    image = nib.Nifti1Image(series, AFFINE)
    check_same_grid(nib.Nifti1Image(np.ones(SHAPE), AFFINE + 1e-4), image, what="mask", reference_what="volumes")
    other_shape = nib.Nifti1Image(np.ones((4, 5, 4)), AFFINE)
    with pytest.raises(InputError, match=re.escape("mask V1 has shape (4, 5, 4), the volumes (4, 5, 3): "
                                                   "resample them onto one grid")):
        check_same_grid(other_shape, image, what="mask V1", reference_what="the volumes")
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    with pytest.raises(InputError, match="^mask V1 and the volumes have different affines: resample them onto one grid$"):
        check_same_grid(nib.Nifti1Image(np.ones(SHAPE), shifted), image, what="mask V1", reference_what="the volumes")


# ------------------------------------------------------------------ volumes and masks


def test_load_volume_counts_and_reorders(tmp_path, series):
    path = write(tmp_path / "sub1.nii.gz", series)
    volume = load_volume(path, stimuli=6)
    assert volume.path == path and volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, series)
    order = np.array([5, 0, 3, 1, 4, 2])
    np.testing.assert_array_equal(load_volume(path, stimuli=6, order=order).data, series[..., order])
    with pytest.raises(InputError, match=rf"{re.escape(str(path))} holds 6 volumes, but there are 7 stimuli; give one "
                                         "volume per stimulus"):
        load_volume(path, stimuli=7)


@pytest.mark.parametrize("name", ["long.nii", "long.nii.gz"])
def test_streamed_reads_equal_the_whole_series_read_at_once(tmp_path, name, monkeypatch):
    monkeypatch.setattr(nifti, "VOLUMES_AT_ONCE", 4)  # 10 volumes: blocks of 4, 4 and 2
    rng = np.random.default_rng(5)
    series = rng.normal(size=(*SHAPE, 10)).astype(np.float32)
    series[0, 0, 0, 7] = np.nan  # non-finite in a later block only
    series[1, 1, 1, :] = 3.0  # constant
    series[2, 2, 2, 9] = np.inf
    path = write(tmp_path / name, series)
    mask = rng.random(SHAPE) > 0.3
    order = rng.permutation(10)
    whole = load_volume(path, stimuli=10, order=order).data
    np.testing.assert_array_equal(masked_responses(path, stimuli=10, mask=mask, order=order), whole[mask].T)
    np.testing.assert_array_equal(masked_responses(path, stimuli=10, mask=mask), series[mask].T)
    finite, usable = usable_voxels_of(path, stimuli=10)
    np.testing.assert_array_equal(usable, usable_voxels(series))
    np.testing.assert_array_equal(finite, np.isfinite(series).all(axis=-1))
    assert not finite[0, 0, 0] and finite[1, 1, 1] and not usable[1, 1, 1]


def test_streamed_reads_refuse_bad_series(tmp_path, series, reference):
    path = write(tmp_path / "sub1.nii.gz", series)
    with pytest.raises(InputError, match="holds 6 volumes, but there are 7 stimuli"):
        masked_responses(path, stimuli=7, mask=np.ones(SHAPE, dtype=bool))
    other = write(tmp_path / "other.nii.gz", series[:3])
    with pytest.raises(InputError, match="has shape"):
        usable_voxels_of(other, stimuli=6, reference=reference)
    big = np.random.default_rng(2).normal(size=(8, 8, 8, 6)).astype(np.float32)
    raw = write(tmp_path / "whole.nii.gz", big).read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=rf"cannot read response volume {re.escape(str(cut))} as NIfTI: .*; replace"):
        masked_responses(cut, stimuli=6, mask=np.ones((8, 8, 8), dtype=bool))


def test_load_volume_refuses_3d_and_other_grid(tmp_path, series, reference):
    flat = write(tmp_path / "flat.nii", series[..., 0])
    with pytest.raises(InputError, match=rf"response volume {re.escape(str(flat))} has 3 dimensions; expected a 4D"):
        load_volume(flat, stimuli=6)
    shifted = AFFINE.copy()
    shifted[1, 3] += 2
    other = write(tmp_path / "other.nii", series, affine=shifted)
    with pytest.raises(InputError, match=rf"{re.escape(str(other))} and .*betas.nii.gz have different affines: "
                                         "resample them onto one grid"):
        load_volume(other, stimuli=6, reference=reference)
    cropped = write(tmp_path / "cropped.nii", series[:3])
    with pytest.raises(InputError, match=r"cropped.nii has shape \(3, 5, 3\), .*betas.nii.gz \(4, 5, 3\): resample"):
        load_volume(cropped, stimuli=6, reference=reference)
    same = write(tmp_path / "same.nii", series)
    np.testing.assert_array_equal(load_volume(same, stimuli=6, reference=reference).data, series)


def test_load_mask(tmp_path, reference):
    values = np.zeros(SHAPE, np.int16)
    values[1, 2, 0], values[3, 4, 2] = 1, 7
    mask = load_mask(write(tmp_path / "V1.nii.gz", values), reference)
    assert mask.dtype == bool and mask.shape == SHAPE
    np.testing.assert_array_equal(mask, values != 0)


def test_load_mask_refuses_empty_4d_and_other_grid(tmp_path, reference):
    empty = write(tmp_path / "empty.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(InputError, match=rf"mask {re.escape(str(empty))} is empty: no voxel is finite and non-zero"):
        load_mask(empty, reference)
    four = write(tmp_path / "four.nii.gz", np.ones((*SHAPE, 2), np.uint8))
    with pytest.raises(InputError, match=rf"mask {re.escape(str(four))} has 4 dimensions; expected a 3D volume"):
        load_mask(four, reference)
    small = write(tmp_path / "small.nii.gz", np.ones((4, 5, 2), np.uint8))
    with pytest.raises(InputError, match=r"mask .*small.nii.gz has shape \(4, 5, 2\), .*betas.nii.gz \(4, 5, 3\): "
                                         "resample them onto one grid"):
        load_mask(small, reference)


def test_usable_voxels_excludes_nan_inf_and_constant(series):
    data = series.copy()
    data[0, 0, 0, 2] = np.nan
    data[1, 0, 0, :] = np.nan  # all NaN: no warning, simply not usable
    data[2, 0, 0, 5] = np.inf
    data[3, 0, 0, 0] = -np.inf
    data[0, 1, 0, :] = 3.0  # constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-NaN voxel gives no RuntimeWarning
        usable = usable_voxels(data)
    expected = np.ones(SHAPE, bool)
    for voxel in [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), (0, 1, 0)]:
        expected[voxel] = False
    np.testing.assert_array_equal(usable, expected)


# ------------------------------------------------------------------ writing maps


def test_save_map_values_in_c_order_nan_outside(tmp_path, reference):
    rng = np.random.default_rng(1)
    mask = rng.random(SHAPE) < 0.4
    values = rng.normal(size=int(mask.sum()))
    out = save_map(values, mask, tmp_path / "map.nii.gz", reference=reference)
    assert out == tmp_path / "map.nii.gz"
    image = nib.load(str(out))
    assert image.shape == SHAPE and image.get_data_dtype() == np.float32
    data = np.asarray(image.dataobj)
    assert data.dtype == np.float32
    assert np.isnan(data[~mask]).all()
    np.testing.assert_array_equal(data[mask], values.astype(np.float32))
    for value, voxel in zip(values, np.argwhere(mask), strict=True):  # C order: the last axis fastest
        assert data[tuple(voxel)] == np.float32(value)
    np.testing.assert_array_equal(image.affine, reference.affine)


def test_save_map_keeps_header_of_reference(tmp_path, series):
    header = nib.Nifti1Header()
    header["descrip"] = b"subject 7 betas"
    header.set_xyzt_units("mm", "sec")
    header.set_data_dtype(np.int16)
    header.set_slope_inter(2.0, 1.0)  # scaling of the reference's data must not apply to the map
    reference = nib.load(str(write(tmp_path / "betas.nii", (series * 100).astype(np.int16), header=header)))
    mask = np.zeros(SHAPE, bool)
    mask[1:3, 2:4, 1] = True
    values = np.arange(1, 5, dtype=np.float64) / 3
    image = nib.load(str(save_map(values, mask, tmp_path / "map.nii", reference=reference)))
    written = image.header
    assert written["descrip"] == b"subject 7 betas"
    assert written.get_xyzt_units() == ("mm", "sec")
    assert written["dim"][0] == 3 and written.get_data_shape() == SHAPE
    np.testing.assert_allclose(written.get_zooms(), reference.header.get_zooms()[:3])
    assert written["sform_code"] == reference.header["sform_code"]
    np.testing.assert_array_equal(image.affine, reference.affine)
    np.testing.assert_array_equal(np.asarray(image.dataobj)[mask], values.astype(np.float32))
    assert reference.header.get_data_dtype() == np.int16 and reference.shape == (*SHAPE, 6)  # untouched


def test_save_binary_uint8(tmp_path, reference):
    selected = np.zeros(SHAPE, bool)
    selected[0, 1, 2] = selected[3, 4, 0] = True
    image = nib.load(str(save_binary(selected, tmp_path / "fdr.nii.gz", reference=reference)))
    assert image.get_data_dtype() == np.uint8 and image.shape == SHAPE
    data = np.asarray(image.dataobj)
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, selected.astype(np.uint8))
    np.testing.assert_array_equal(image.affine, reference.affine)


def test_save_map_is_atomic(tmp_path, reference, monkeypatch):
    out_dir = tmp_path / "maps"
    out_dir.mkdir()
    out = out_dir / "map.nii.gz"
    out.write_bytes(b"earlier map")
    mask = np.ones(SHAPE, bool)

    def broken(image, filename):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise RuntimeError("writer crashed")

    monkeypatch.setattr(nib, "save", broken)
    with pytest.raises(RuntimeError, match="writer crashed"):
        save_map(np.zeros(mask.sum()), mask, out, reference=reference)
    assert files(out_dir) == ["map.nii.gz"] and out.read_bytes() == b"earlier map"

    def full(image, filename):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nib, "save", full)
    fresh = out_dir / "fdr.nii.gz"
    with pytest.raises(OutputError, match=rf"no space left on the device while writing {re.escape(str(fresh))}"):
        save_binary(mask, fresh, reference=reference)
    assert files(out_dir) == ["map.nii.gz"]


def test_save_map_into_missing_folder_creates_it(tmp_path, reference):
    mask = np.ones(SHAPE, bool)
    out = save_map(np.zeros(mask.sum()), mask, tmp_path / "new" / "maps" / "map.nii.gz", reference=reference)
    assert Path(out).is_file()


def test_save_map_under_a_file_refused(tmp_path, reference):
    mask = np.ones(SHAPE, bool)
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(OutputError, match=r"output folder .*plain is a file, not a folder"):
        save_map(np.zeros(mask.sum()), mask, tmp_path / "plain" / "map.nii.gz", reference=reference)


# ------------------------------------------------------------------ headers as bytes


def test_header_bytes_round_trip_with_extensions(tmp_path, series):
    image = nib.Nifti1Image(series, AFFINE)
    image.header["descrip"] = b"round trip"
    image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"hello extensions"))
    stored = nib.load(str(write(tmp_path / "b.nii.gz", series, header=image.header)))
    assert len(stored.header.extensions) == 1

    class_name, header, extensions = header_bytes(stored)
    assert class_name == "Nifti1Header" and header == stored.header.binaryblock and len(header) == 348
    assert extensions
    rebuilt = image_from_header(class_name, header, extensions, stored.affine)
    assert isinstance(rebuilt, nib.Nifti1Image)
    assert rebuilt.header.binaryblock == header
    assert [(e.get_code(), e.get_content()) for e in rebuilt.header.extensions] == [(6, b"hello extensions")]
    np.testing.assert_array_equal(rebuilt.affine, stored.affine)
    assert rebuilt.shape == series.shape
    assert rebuilt.dataobj.strides == (0,) * 4  # no memory for the data

    mask = np.zeros(SHAPE, bool)
    mask[2, :, 1] = True
    values = np.arange(5.0)
    a = nib.load(str(save_map(values, mask, tmp_path / "a.nii", reference=stored)))
    b = nib.load(str(save_map(values, mask, tmp_path / "b.nii", reference=rebuilt)))
    assert a.header.binaryblock == b.header.binaryblock
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))


def test_header_bytes_without_extensions_and_nifti2():
    image = nib.Nifti2Image(np.zeros(SHAPE, np.float32), AFFINE)
    class_name, header, extensions = header_bytes(image)
    assert class_name == "Nifti2Header" and extensions == b""
    rebuilt = image_from_header(class_name, header, extensions, image.affine)
    assert isinstance(rebuilt, nib.Nifti2Image) and rebuilt.header.binaryblock == header
    assert len(rebuilt.header.extensions) == 0


def test_analyze_header_becomes_nifti1():
    analyze = nib.AnalyzeImage(np.zeros(SHAPE, np.int16), np.diag([2.0, 3.0, 4.0, 1.0]))
    class_name, header, extensions = header_bytes(analyze)
    assert class_name == "Nifti1Header" and len(header) == 348 and extensions == b""
    rebuilt = image_from_header(class_name, header, extensions, analyze.affine)
    assert isinstance(rebuilt, nib.Nifti1Image) and rebuilt.shape == SHAPE
    assert rebuilt.header.get_data_dtype() == np.int16
    np.testing.assert_array_equal(rebuilt.affine, analyze.affine)


def test_image_from_header_refuses_other_classes():
    header = nib.AnalyzeHeader().binaryblock
    with pytest.raises(InputError, match="a stored reference header is a AnalyzeHeader, not a NIfTI header; write it "
                                         "again"):
        image_from_header("AnalyzeHeader", header, b"", np.eye(4))


def test_a_mask_is_inside_only_where_finite_and_non_zero(tmp_path, reference):
    values = np.full(SHAPE, np.nan, np.float32)  # saved with NaN for "outside", as some tools do
    values[1, 2, 0], values[3, 4, 2], values[0, 0, 0], values[2, 2, 2] = 1, 0.5, np.inf, 0
    with pytest.warns(RuntimeWarning, match=rf"holds {values.size - 3} NaN or infinite voxels; they count as outside"):
        mask = load_mask(write(tmp_path / "V1.nii.gz", values), reference)
    np.testing.assert_array_equal(np.argwhere(mask), [[1, 2, 0], [3, 4, 2]])
