"""THINGSvision's and Net2Brain's saved features, built here in their layouts, read equal
to ours (net2brain_fovex.extraction.foreign) and through `net2brain convert`."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rdm_files import read_rdm_file
from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.extraction.activations import read_activations
from net2brain_fovex.extraction.foreign import convert_to_file, read_foreign

RNG = np.random.default_rng(11)
IDS = [f"img_{i}.jpg" for i in range(1, 8)]
LAYERS = {"conv1": RNG.normal(size=(7, 3, 4, 4)).astype(np.float32), "fc": RNG.normal(size=(7, 10)).astype(np.float32)}


def thingsvision(root, parts=False):
    """One sub-folder per module (as users save them), file_names.txt with full paths above them."""
    root.mkdir()
    (root / "file_names.txt").write_text("".join(f"/data/images/{name}\n" for name in IDS))
    for name, values in LAYERS.items():
        (root / name).mkdir()
        if name == "fc":  # THINGSvision's HDF5 output
            with h5py.File(root / name / "features.hdf5", "w") as file:
                file.create_dataset("features", data=values)
        elif parts:  # its low-memory output, in parts
            np.save(root / name / "features_01.npy", values[:4])
            np.save(root / name / "features_02.npy", values[4:])
        else:
            np.save(root / name / "features.npy", values)
    return root


def net2brain_images(root):
    root.mkdir()
    for index, name in enumerate(IDS):  # Net2Brain keeps the batch axis of one image
        np.savez_compressed(root / f"{name}.npz", **{k: v[index][None] for k, v in LAYERS.items()})
    return root


def net2brain_layers(root):
    root.mkdir()
    for layer, values in LAYERS.items():
        np.savez_compressed(root / f"{layer}.npz", **{name: values[i][None] for i, name in enumerate(IDS)})
    return root


@pytest.mark.parametrize("build, layout", [(thingsvision, "thingsvision"),
                                           (lambda r: thingsvision(r, parts=True), "thingsvision"),
                                           (net2brain_images, "net2brain-images"),
                                           (net2brain_layers, "net2brain-layers")])
def test_each_layout_reads_equal_to_ours(tmp_path, build, layout):
    source = build(tmp_path / "features")
    path, found = convert_to_file(source, tmp_path / "acts.h5")
    assert found.format == layout
    stimuli, layers = read_activations(path)
    assert stimuli == IDS and list(layers) == list(LAYERS)
    for name, values in LAYERS.items():
        np.testing.assert_array_equal(layers[name], values)
    with h5py.File(path) as file:
        assert file.attrs["kind"] == "activations" and file.attrs["source_format"] == layout


def test_the_rdms_of_a_converted_file_are_those_of_the_arrays(net2brain, tmp_path):
    source = net2brain_images(tmp_path / "features")
    result = net2brain("convert", source, "--out", tmp_path / "acts.h5")
    assert result.code == 0, result
    assert "wrote" in result.err and "net2brain-images" in result.err and "7 stimuli" in result.err
    assert net2brain("rdm", "--activations", tmp_path / "acts.h5", "--out", tmp_path / "rdms.h5").code == 0
    rdms = read_rdm_file(tmp_path / "rdms.h5")
    assert rdms.stimuli == IDS
    np.testing.assert_allclose(rdms.rdms["conv1"], compute_rdm(LAYERS["conv1"].reshape(7, -1)), atol=1e-6)


def test_one_module_folder_takes_its_layer_name(tmp_path):
    root = thingsvision(tmp_path / "features")
    found = read_foreign(root / "conv1", layer="block1")
    assert list(found.shapes) == ["block1"] and found.stimuli == IDS  # file_names.txt of the folder above
    assert list(read_foreign(root / "conv1").shapes) == ["conv1"]


def test_disagreeing_and_ambiguous_folders_are_refused(tmp_path):
    root = thingsvision(tmp_path / "tv")
    (root / "file_names.txt").write_text("".join(f"{name}\n" for name in IDS[:-1]))
    with pytest.raises(InputError, match="has 7 rows of features for the 6 images"):
        read_foreign(root)
    both = net2brain_images(tmp_path / "both")
    np.savez_compressed(both / "extra.png.npz", **{"a.jpg": np.zeros(3)})
    with pytest.raises(InputError, match="holds other layers than"):
        read_foreign(both, "net2brain-images")
    odd = net2brain_layers(tmp_path / "odd")
    np.savez_compressed(odd / "fc.npz", **{name: np.zeros((1, 10 + (i == 3))) for i, name in enumerate(IDS)})
    with pytest.raises(InputError, match="stimulus 'img_4.jpg' has shape"):
        read_foreign(odd)
    plain = tmp_path / "plain"
    plain.mkdir()
    np.savez(plain / "a.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="the layouts that fit are none"):
        read_foreign(plain)
    with pytest.raises(ConfigError, match="`layer`"):
        read_foreign(net2brain_layers(tmp_path / "n2b"), layer="x")


def test_a_layer_takes_the_type_that_holds_every_image(tmp_path):
    """Integers in one image and floats in another: the layer is float, no value truncated."""
    root = tmp_path / "n2b"
    root.mkdir()
    values = [np.array([[1, 2, 3]], dtype=np.int32), np.array([[0.5, -1.25, 2.0]]), np.array([[7, 8, 9]], dtype=np.int64)]
    for index, array in enumerate(values):
        np.savez(root / f"img_{index}.png.npz", fc=array)
    out, found = convert_to_file(root, tmp_path / "acts.h5")
    assert found.dtypes["fc"] == np.float64
    with h5py.File(out) as file:
        assert np.array_equal(file["layers/fc"][()], np.concatenate(values).astype(np.float64))


def test_non_finite_features_are_copied_and_named(tmp_path):
    root = net2brain_images(tmp_path / "n2b")
    bad = {k: v[2][None].copy() for k, v in LAYERS.items()}
    bad["fc"][0, 4] = np.inf
    np.savez_compressed(root / f"{IDS[2]}.npz", **bad)
    with pytest.warns(RuntimeWarning, match=r"layer 'fc' holds NaN or infinite values \(first in stimulus 'img_3.jpg'\)"):
        out, _ = convert_to_file(root, tmp_path / "acts.h5")
    with h5py.File(out) as file:
        assert np.isposinf(file["layers/fc"][2, 4]) and np.isfinite(file["layers/conv1"][()]).all()
