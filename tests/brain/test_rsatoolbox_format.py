"""rsatoolbox's RDM files: read as model and brain RDMs, written by `net2brain rdm --format
rsatoolbox`, its pickle format refused; round trips against rsatoolbox itself."""
from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest

from net2brain_fovex.brain.rdm_files import rdms_to_file, read_brain_rdms, read_model_rdms, read_rdm_file, write_rdms
from net2brain_fovex.errors import ConfigError, InputError
from tests.brain.test_rdm import write_activations

rsatoolbox = pytest.importorskip("rsatoolbox")

RNG = np.random.default_rng(41)
N = 6
IDS = [f"img_{i}.png" for i in range(N)]


def literal_square(vector: np.ndarray, n: int) -> np.ndarray:
    """The square RDM of a condensed upper triangle, filled row by row (as rsatoolbox orders it)."""
    matrix, k = np.zeros((n, n)), 0
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = vector[k]
            k += 1
    return matrix


def saved(path, vectors, **descriptors):
    rsatoolbox.rdm.RDMs(vectors, dissimilarity_measure="euclidean", **descriptors).save(str(path), file_type="hdf5")
    return path


def random_vectors(count: int, n: int = N) -> np.ndarray:
    return RNG.uniform(0.1, 2.0, size=(count, n * (n - 1) // 2))


def test_rsatoolbox_file_read_as_model_rdms(tmp_path):
    vectors = random_vectors(3)
    path = saved(tmp_path / "model.hdf5", vectors, rdm_descriptors={"name": ["conv1", "conv2", "fc"]},
                 pattern_descriptors={"stimulus": IDS})
    read = read_model_rdms(path)
    assert list(read.rdms) == ["conv1", "conv2", "fc"] and read.stimuli == IDS and read.metric == "euclidean"
    for name, vector in zip(read.rdms, vectors, strict=True):
        np.testing.assert_array_equal(read.rdms[name], literal_square(vector, N))
    # no name: the index; no stimulus descriptor but another one: that one; only `index`: no ids
    read = read_model_rdms(saved(tmp_path / "b.h5", vectors[:2], pattern_descriptors={"conds": list("abcdef")}))
    assert list(read.rdms) == ["0", "1"] and read.stimuli == list("abcdef")
    assert read_model_rdms(saved(tmp_path / "c.h5", vectors[:2])).stimuli is None
    read = read_model_rdms(saved(tmp_path / "d.h5", vectors[:1], pattern_descriptors={"zeta": list("uvwxyz")}))
    assert read.stimuli == list("uvwxyz")


def test_rsatoolbox_file_read_as_brain_rdms(tmp_path):
    vectors = random_vectors(5)
    # one ROI per name, its RDMs the subjects
    path = saved(tmp_path / "brain.h5", vectors, rdm_descriptors={"roi": ["V1", "V1", "V1", "IT", "IT"]},
                 pattern_descriptors={"image": IDS})
    read = read_brain_rdms(path)
    assert {roi: stack.shape for roi, stack in read.rdms.items()} == {"V1": (3, N, N), "IT": (2, N, N)}
    assert read.stimuli == IDS
    np.testing.assert_array_equal(read.rdms["IT"][1], literal_square(vectors[4], N))
    # no name: one ROI named by the file
    read = read_brain_rdms(saved(tmp_path / "LOC.hdf5", vectors[:2], pattern_descriptors={"stimulus": IDS}))
    assert list(read.rdms) == ["LOC"] and read.rdms["LOC"].shape == (2, N, N)
    # subjects x time
    times = saved(tmp_path / "meg.h5", random_vectors(6), rdm_descriptors={
        "name": ["MEG"] * 6, "subject": [0, 0, 0, 1, 1, 1], "time": [0, 1, 2, 0, 1, 2]})
    stack = read_brain_rdms(times).rdms["MEG"]
    vectors = rsatoolbox.rdm.load_rdm(str(times)).dissimilarities
    assert stack.shape == (2, 3, N, N)
    np.testing.assert_array_equal(stack[1, 2], literal_square(vectors[5], N))


def test_rsatoolbox_files_through_rsa(net2brain, tmp_path):
    """The same RDMs in our layout and in rsatoolbox's give the same RSA results."""
    layers = {name: random_vectors(1)[0] for name in ("a", "b")}
    subjects = random_vectors(3)
    order = [3, 0, 5, 1, 4, 2]  # the brain file lists its stimuli in another order
    ours_model = write_rdms(tmp_path / "model.h5", IDS, {k: literal_square(v, N) for k, v in layers.items()},
                            metric="euclidean")
    ours_brain = write_rdms(tmp_path / "brain.h5", IDS, {"V1": np.stack([literal_square(v, N) for v in subjects])},
                            metric="euclidean")
    squares = np.stack([literal_square(v, N)[np.ix_(order, order)] for v in subjects])
    tbx_brain = tmp_path / "tbx_brain.h5"
    rsatoolbox.rdm.RDMs(squares, rdm_descriptors={"name": ["V1"] * 3},
                        pattern_descriptors={"stimulus": [IDS[i] for i in order]}).save(str(tbx_brain))
    tbx_model = saved(tmp_path / "tbx_model.h5", np.stack(list(layers.values())), rdm_descriptors={"name": ["a", "b"]},
                      pattern_descriptors={"stimulus": IDS})
    rows = {}
    for label, model, brain in (("ours", ours_model, ours_brain), ("tbx", tbx_model, tbx_brain)):
        out = tmp_path / f"{label}.csv"
        result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out)
        assert result.code == 0, result
        with open(out, newline="") as handle:
            rows[label] = [(r["roi"], r["layer"], r["score"]) for r in csv.DictReader(handle)]
    assert rows["ours"] == rows["tbx"] and len(rows["ours"]) == 2


def test_rdm_writes_rsatoolbox_files(net2brain, tmp_path):
    layers = {"conv": RNG.normal(size=(N, 2, 3)).astype(np.float32), "fc": RNG.normal(size=(N, 5)).astype(np.float32)}
    acts = tmp_path / "acts.h5"
    write_activations(acts, layers, IDS)
    ours, theirs = tmp_path / "ours.h5", tmp_path / "theirs.h5"
    assert net2brain("rdm", "--activations", acts, "--out", ours, "--metric", "euclidean",
                     "--precision", "double").code == 0
    result = net2brain("rdm", "--activations", acts, "--out", theirs, "--metric", "euclidean", "--precision", "double",
                       "--format", "rsatoolbox")
    assert result.code == 0, result
    expected = read_rdm_file(ours)
    loaded = rsatoolbox.rdm.load_rdm(str(theirs))
    assert loaded.n_rdm == 2 and loaded.dissimilarity_measure == "euclidean"
    assert list(loaded.rdm_descriptors["name"]) == ["conv", "fc"]
    assert list(loaded.pattern_descriptors["stimulus"]) == IDS
    for k, name in enumerate(("conv", "fc")):
        np.testing.assert_allclose(literal_square(loaded.dissimilarities[k], N), expected.rdms[name], atol=1e-12)
    np.testing.assert_allclose(loaded.get_matrices(), np.stack([expected.rdms["conv"], expected.rdms["fc"]]), atol=1e-12)
    # and back: our readers take what we wrote
    back = read_model_rdms(theirs)
    assert back.stimuli == IDS and list(back.rdms) == ["conv", "fc"]
    np.testing.assert_allclose(back.rdms["fc"], expected.rdms["fc"], atol=1e-12)


def test_brain_rdms_round_trip_in_rsatoolbox_layout(tmp_path):
    responses = [RNG.normal(size=(N, 4, 3)) for _ in range(2)]  # stimuli x channels x time
    for s, data in enumerate(responses):
        np.save(tmp_path / f"sub-{s}.npy", data)
    files = [tmp_path / "sub-0.npy", tmp_path / "sub-1.npy"]
    ours = rdms_to_file(tmp_path / "ours.h5", responses=files, roi="MEG", precision="double")
    theirs = rdms_to_file(tmp_path / "theirs.h5", responses=files, roi="MEG", precision="double", format="rsatoolbox")
    loaded = rsatoolbox.rdm.load_rdm(str(theirs.path))
    assert loaded.n_rdm == 2 * 3 and list(loaded.rdm_descriptors["subject"]) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(loaded.get_matrices()[4], ours.rdms["MEG"][1, 1], atol=1e-12)
    back = read_brain_rdms(theirs.path)
    assert back.stimuli == ours.stimuli
    np.testing.assert_allclose(back.rdms["MEG"], ours.rdms["MEG"], atol=1e-12)


def test_pickles_are_refused(tmp_path):
    rdms = rsatoolbox.rdm.RDMs(random_vectors(2))
    rdms.save(str(tmp_path / "rdms.pkl"), file_type="pkl")
    (tmp_path / "disguised.h5").write_bytes(pickle.dumps({"dissimilarities": [1, 2, 3]}))
    for path in (tmp_path / "rdms.pkl", tmp_path / "disguised.h5"):
        for read in (read_model_rdms, read_brain_rdms):
            with pytest.raises(InputError, match=r"is a pickle \(rsatoolbox's pkl format\).*file_type='hdf5'"):
                read(path)


def test_rsatoolbox_format_needs_an_hdf5_suffix_and_ascii(tmp_path):
    acts = tmp_path / "acts.h5"
    write_activations(acts, {"fc": RNG.normal(size=(N, 5)).astype(np.float32)}, IDS)
    with pytest.raises(ConfigError, match="must end in .h5 or .hdf5"):
        rdms_to_file(tmp_path / "rdms.rdm", activations=acts, format="rsatoolbox")
    with pytest.raises(ConfigError, match="matlab"):
        rdms_to_file(tmp_path / "rdms.h5", activations=acts, format="matlab")
    accented = tmp_path / "accented.h5"
    write_activations(accented, {"fc": RNG.normal(size=(N, 5)).astype(np.float32)}, ["é", *IDS[1:]])
    with pytest.raises(InputError, match="'é' is not ASCII"):
        rdms_to_file(tmp_path / "rdms.h5", activations=accented, format="rsatoolbox")
    assert not (tmp_path / "rdms.h5").exists()
