"""The localisation task of `fovex demo`: its images, ground-truth boxes and tiny CNN."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from net2brain_fovex.demo.localisation_task import (
    CLASS_NAMES,
    TinyCNN,
    accuracy,
    make_localisation_set,
    save_checkpoint,
    tiny_cnn,
    to_tensor,
    train_tiny_cnn,
)
from net2brain_fovex.errors import ConfigError
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def data():
    return make_localisation_set(60, seed=3)


def test_same_seed_gives_the_same_set_and_a_longer_set_extends_it(data):
    again = make_localisation_set(90, seed=3)
    for field in ("images", "labels", "boxes", "masks"):
        np.testing.assert_array_equal(getattr(again, field)[:60], getattr(data, field))


def test_another_seed_gives_other_images(data):
    other = make_localisation_set(60, seed=4)
    assert not np.array_equal(other.images, data.images)
    assert not np.array_equal(other.boxes, data.boxes)


def test_arrays_have_the_documented_shapes_and_types(data):
    assert data.images.shape == (60, 64, 64, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (60,) and data.labels.dtype == np.int64
    assert data.boxes.shape == (60, 4) and np.issubdtype(data.boxes.dtype, np.integer)
    assert data.masks.shape == (60, 64, 64) and data.masks.dtype == bool
    assert data.class_names == CLASS_NAMES == ("circle", "square", "triangle")
    assert len(data) == 60


def test_boxes_are_the_tight_bounding_boxes_of_the_masks_and_inside_the_image(data):
    for box, mask in zip(data.boxes, data.masks, strict=True):
        rows, cols = np.nonzero(mask)
        assert tuple(box) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert 14 <= max(x1 - x0, y1 - y0) <= 22
        assert mask.sum() > 0.4 * (x1 - x0) * (y1 - y0)  # a filled shape, not an outline


def test_the_object_is_drawn_on_top_in_one_flat_colour(data):
    for image, mask in zip(data.images, data.masks, strict=True):
        colours = np.unique(image[mask], axis=0)
        assert len(colours) == 1


def test_classes_are_balanced(data):
    counts = np.bincount(data.labels, minlength=3)
    assert counts.max() - counts.min() <= 1


def test_object_colour_does_not_tell_the_class():
    data = make_localisation_set(300, seed=5)
    colours = np.stack([image[mask][0] for image, mask in zip(data.images, data.masks, strict=True)]).astype(float)
    overall = colours.mean(axis=0)
    for label in range(3):
        # the standard error of a class mean is about 7 grey levels per channel
        assert np.abs(colours[data.labels == label].mean(axis=0) - overall).max() < 30


def test_other_sizes_scale_the_object():
    data = make_localisation_set(9, size=128, seed=0)
    extents = np.maximum(data.boxes[:, 2] - data.boxes[:, 0], data.boxes[:, 3] - data.boxes[:, 1])
    assert data.images.shape == (9, 128, 128, 3)
    assert extents.min() >= 28 and extents.max() <= 44


@pytest.mark.parametrize(("count", "size", "match"), [(-1, 64, "non-negative"), (4, 16, "at least 32")])
def test_bad_arguments_are_refused(count, size, match):
    with pytest.raises(ConfigError, match=match):
        make_localisation_set(count, size=size)


def test_to_tensor_scales_and_normalises_each_channel(data):
    images = data.images[:2]
    expected = (images.astype(np.float64) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    tensor = to_tensor(images)
    assert tensor.shape == (2, 3, 64, 64) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.permute(0, 2, 3, 1).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_model_outputs_logits_and_keeps_an_8x8_map_for_grad_cam(data):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = to_tensor(data.images[:2])
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        assert model.features(x).shape == (2, 64, 8, 8)
    assert "features.relu4" in dict(model.named_modules())
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 3


def test_batch_output_equals_one_image_at_a_time(data):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = to_tensor(data.images[:5])
    with torch.no_grad():
        batch = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-6)


def test_short_training_lowers_the_loss_and_is_deterministic(data):
    train = make_localisation_set(96, seed=1)
    x, y = to_tensor(train.images), torch.from_numpy(train.labels)
    torch.manual_seed(0)  # what train_tiny_cnn starts from with seed 0
    initial = TinyCNN().eval()
    model = train_tiny_cnn(train, epochs=2, seed=0, batch_size=16)
    with torch.no_grad():
        before = nn.functional.cross_entropy(initial(x), y).item()
        after = nn.functional.cross_entropy(model(x), y).item()
    assert after < before - 0.05
    assert not model.training
    again = train_tiny_cnn(train, epochs=2, seed=0, batch_size=16)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor, rtol=0, atol=0)
    assert 0 <= accuracy(model, data) <= 1


def test_checkpoint_loads_through_the_factory_route(tmp_path, data):
    torch.manual_seed(7)
    model = tiny_cnn().eval()
    path = save_checkpoint(model, tmp_path / "tiny.safetensors")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]
    loaded = load_model("net2brain_fovex.demo.localisation_task:tiny_cnn", weights=str(path), device="cpu")
    assert loaded.source == "factory" and isinstance(loaded.module, TinyCNN)
    state = loaded.module.state_dict()
    assert state.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    x = to_tensor(data.images[:3])
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x), rtol=0, atol=0)
