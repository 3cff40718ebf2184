"""`net2brain rdm --plot` with `--labels` and `--thumbnails`: pictures drawn from the right
data (the order by category, the MDS of the written RDM), through the command line and
the core."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.brain import rdm_files
from net2brain_fovex.brain.categories import category_order, read_categories
from net2brain_fovex.brain.mds import classical_mds
from net2brain_fovex.brain.rdm_files import rdms_to_file, read_rdm_file
from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.figures.rdm import RDM_FIGURE_SIZE
from tests.brain.test_rdm import write_activations
from tests.conftest import write_images

IDS = [f"img_{i}.png" for i in range(1, 9)]
# the CSV interleaves the categories: the picture must group them
LABELS = "stimulus,category\n" + "".join(f"{s},{'face' if i % 2 else 'house'}\n" for i, s in enumerate(IDS))


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(2)
    # two planted clusters: the houses (even rows) near 0, the faces near 6
    features = rng.normal(0, 0.2, size=(8, 10)) + 6.0 * (np.arange(8) % 2)[:, None]
    acts = tmp_path / "acts.h5"
    write_activations(acts, {"fc": features.astype(np.float32)}, IDS)
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS)
    images = write_images(tmp_path / "images", 8, size=16, names=IDS)
    return acts, labels, images


def test_the_picture_groups_the_categories_and_embeds_the_written_rdm(tmp_path, inputs):
    acts, labels, images = inputs
    result = rdms_to_file(tmp_path / "rdms.h5", activations=acts, metric="euclidean", precision="double",
                          plot=tmp_path / "plots", labels=labels, thumbnails=images)
    (picture,) = result.plots
    assert picture.order == [0, 2, 4, 6, 1, 3, 5, 7]  # houses first (the CSV's first row), then faces
    written = read_rdm_file(tmp_path / "rdms.h5").rdms["fc"]
    np.testing.assert_array_equal(picture.coordinates, classical_mds(written))
    first = picture.coordinates[:, 0]  # the clusters split on the first axis
    assert len(set(np.sign(first[::2]))) == 1 and len(set(np.sign(first[1::2]))) == 1 and first[0] * first[1] < 0
    with Image.open(picture.path) as image:
        assert image.format == "PNG" and image.size == RDM_FIGURE_SIZE


def test_rdm_plot_with_labels_and_thumbnails_through_the_command_line(net2brain, tmp_path, inputs):
    acts, labels, images = inputs
    result = net2brain("rdm", "--activations", acts, "--out", tmp_path / "rdms.h5", "--plot", tmp_path / "plots",
                       "--labels", labels, "--thumbnails", images)
    assert result.code == 0, result
    with Image.open(tmp_path / "plots" / "fc.png") as image:
        assert image.size == RDM_FIGURE_SIZE
    with_labels = np.asarray(Image.open(tmp_path / "plots" / "fc.png"))
    plain = net2brain("rdm", "--activations", acts, "--out", tmp_path / "plain.h5", "--plot", tmp_path / "plain")
    assert plain.code == 0 and not np.array_equal(with_labels, np.asarray(Image.open(tmp_path / "plain" / "fc.png")))


def test_labels_are_checked_before_anything_is_written(tmp_path, inputs, monkeypatch):
    acts, labels, images = inputs
    out = tmp_path / "out"
    cases = [
        (dict(labels=labels), ConfigError, "give `plot`"),
        (dict(thumbnails=images), ConfigError, "give `plot`"),
        (dict(plot=out / "p", labels=tmp_path / "gone.csv"), InputError, "does not exist"),
        (dict(plot=out / "p", thumbnails=tmp_path / "gone"), InputError, "does not exist"),
    ]
    labels.with_name("short.csv").write_text(LABELS.rsplit("img_8", 1)[0])
    cases.append((dict(plot=out / "p", labels=labels.with_name("short.csv")), InputError, "no category for stimulus 'img_8.png'"))
    (images / "img_3.png").unlink()
    cases.append((dict(plot=out / "p", thumbnails=images), InputError, "img_3.png does not exist"))
    labels.with_name("extra.csv").write_text(LABELS + "img_9.png,face\n")
    cases.append((dict(plot=out / "p", labels=labels.with_name("extra.csv")), InputError, "lists 'img_9.png', not a stimulus"))
    monkeypatch.setattr(rdm_files, "rdms_from_activations", no_work)  # refused before the RDMs are computed
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            rdms_to_file(out / "rdms.h5", activations=acts, **options)
        assert not out.exists()


def no_work(*args, **kwargs):
    raise AssertionError("the RDMs were computed before the labels and images were checked")


def test_the_labels_file_is_read_strictly(tmp_path):
    path = tmp_path / "labels.csv"
    for text, message in [("stimulus,kind\na,x\n", "lacks the column\\(s\\) category"),
                          ("stimulus,category\na,x\na,y\n", "lists stimulus 'a' twice \\(line 3\\)"),
                          ("stimulus,category\na,\n", "line 2: stimulus 'a' has no category"),
                          (b"\xff\xfe\x00", "not a readable UTF-8 CSV")]:
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        with pytest.raises(InputError, match=message):
            read_categories(path)
    path.write_text("\ufeffstimulus,category,notes\nb,y,\na,x,first\n")
    assert read_categories(path, ["a", "b"]) == {"b": "y", "a": "x"}
    with pytest.raises(InputError, match="lists 'b', not a stimulus of the RDMs"):
        read_categories(path, ["a", "c"])
    assert category_order(["a", "b", "c"], {"c": "z", "a": "x", "b": "z"}) == ([2, 1, 0], [("z", 0, 2), ("x", 2, 3)])
