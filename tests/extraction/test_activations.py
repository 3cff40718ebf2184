"""`extract`: values equal a plain forward hook, tokens, videos, projection, dtypes, order."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from net2brain_fovex.errors import ConfigError, ModelError
from net2brain_fovex.extraction.activations import extract_to_file, iter_activations, plan_extraction, read_activations
from net2brain_fovex.extraction.reduction import projection_matrix
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory, write_images


def reference_outputs(model, batch, names):
    """The literal way: one forward hook per layer, a plain forward pass."""
    got, handles = {}, []
    modules = dict(model.named_modules())
    for name in names:
        handles.append(modules[name].register_forward_hook(lambda m, i, o, name=name: got.__setitem__(name, o)))
    with torch.no_grad():
        model(batch)
    for handle in handles:
        handle.remove()
    return got


def reference_batch(paths, size, resize, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    pipeline = transforms.Compose([
        transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(), transforms.Normalize(mean, std),
    ])
    return torch.stack([pipeline(Image.open(p).convert("RGB")) for p in paths])


@pytest.mark.parametrize(("model", "layers"), [("resnet18", "top"), (factory("tiny_cnn"), "all")])
def test_equals_plain_forward_hook(net2brain, tmp_path, images, model, layers):
    out = tmp_path / "acts.h5"
    result = net2brain("extract", "--model", model, "--weights", "random", "--seed", 5, "--stimuli", images,
                       "--out", out, "--image-size", 32, "--batch-size", 4, "--layers", layers)
    assert result.code == 0, result
    reference_model = load_model(model, weights="random", seed=5, device="cpu").module
    paths = sorted(images.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    with h5py.File(out) as file:
        assert [s.decode() for s in file["stimuli"][()]] == [p.name for p in paths]
        names = list(file["layers"])
        assert file.attrs["model"] == model and file.attrs["weights"] == "random" and file.attrs["kind"] == "activations"
        for start in (0, 4):  # the same batches as the run, so the arithmetic is identical
            chunk = paths[start:start + 4]
            expected = reference_outputs(reference_model, reference_batch(chunk, 32, 36), names)
            for name in names:
                assert np.array_equal(file["layers"][name][start:start + len(chunk)], expected[name].numpy()), name
    if layers == "top":
        assert names == ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


@pytest.mark.parametrize("tokens", ["auto", "cls", "mean", "all"])
def test_transformer_tokens(tmp_path, images, tokens):
    loaded = load_model(factory("tiny_vit"), weights="random", device="cpu", image_size=32)
    plan = plan_extraction(loaded, "blocks.0,head", tokens=tokens)
    stimuli = discover_stimuli(images)
    rows = dict(next(iter_activations(loaded, stimuli, plan, batch_size=7))[1])
    batch = reference_batch([s.path for s in stimuli], 32, 36)
    raw = reference_outputs(loaded.module, batch, ["blocks.0"])["blocks.0"]  # (7, 1 + 16 patches, 16)
    expected = {"auto": raw[:, 0], "cls": raw[:, 0], "mean": raw[:, 1:].mean(1), "all": raw}[tokens]
    assert plan.shapes["blocks.0"] == tuple(expected.shape[1:])
    np.testing.assert_allclose(rows["blocks.0"], expected.numpy(), rtol=1e-6, atol=1e-6)
    assert rows["head"].shape == (7, 3)


def test_cls_needs_a_class_token(tmp_path):
    from net2brain_fovex.errors import ConfigError

    loaded = load_model(factory("tiny_cnn"), device="cpu", image_size=16)
    with pytest.raises(ConfigError, match="has no class token; use `tokens=mean`"):
        plan_extraction(loaded, "head", tokens="cls")


def test_float16_and_natural_order(net2brain, tmp_path):
    folder = write_images(tmp_path / "set", 0, names=["img_10.png", "img_2.png", "Img_1.jpg", "img_1.png"])
    (folder / "notes.txt").write_text("not a stimulus")
    out = tmp_path / "half.h5"
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", folder,
                       "--out", out, "--image-size", 16, "--dtype", "float16", "--layers", "head")
    assert result.code == 0, result
    with h5py.File(out) as file:
        assert [s.decode() for s in file["stimuli"][()]] == ["Img_1.jpg", "img_1.png", "img_2.png", "img_10.png"]
        assert file["layers/head"].dtype == np.float16 and file["layers/head"].shape == (4, 5)


def test_list_file_keeps_its_order(net2brain, tmp_path, images):
    listing = tmp_path / "list.txt"
    listing.write_text("# chosen order\nimages/img_3.png\n\nimages/img_1.png\n")
    out = tmp_path / "acts.h5"
    assert net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", listing,
                     "--out", out, "--image-size", 16).code == 0
    with h5py.File(out) as file:
        assert [s.decode() for s in file["stimuli"][()]] == ["images/img_3.png", "images/img_1.png"]


def test_sparse_random_projection(tmp_path, images):
    loaded = load_model(factory("tiny_cnn"), weights="random", device="cpu", image_size=32)
    plan = plan_extraction(loaded, "features.0,head", srp_components=64)
    assert plan.shapes == {"features.0": (64,), "head": (5,)}  # head has fewer features than 64: kept
    stimuli = discover_stimuli(images)
    rows = dict(next(iter_activations(loaded, stimuli, plan, batch_size=7))[1])
    raw = reference_outputs(loaded.module, reference_batch([s.path for s in stimuli], 32, 36), ["features.0"])["features.0"]
    dense = projection_matrix(4 * 32 * 32, 64, seed=0, layer="features.0").to_dense()
    np.testing.assert_allclose(rows["features.0"], (raw.flatten(1) @ dense.T).numpy(), rtol=1e-4, atol=1e-4)
    # the very sparse projection: about sqrt(d) non-zeros per component, values +-sqrt(sqrt(d)/k)
    d = 4 * 32 * 32
    values = dense[dense != 0].abs().unique()
    assert torch.allclose(values, torch.tensor([np.sqrt(np.sqrt(d) / 64)], dtype=values.dtype))
    assert abs((dense != 0).sum().item() / 64 - np.sqrt(d)) < 0.2 * np.sqrt(d)
    # seeded: the same matrix again, another for another layer
    assert torch.equal(dense, projection_matrix(d, 64, seed=0, layer="features.0").to_dense())
    assert not torch.equal(dense, projection_matrix(d, 64, seed=0, layer="features.1").to_dense())


def test_projection_preserves_distances():
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.2, 3.0, size=(20, 1))  # points at many distances from each other
    x = torch.tensor(rng.normal(size=(20, 4096)) * scales, dtype=torch.float32)
    y = (projection_matrix(4096, 2000, seed=1, layer="layer") @ x.T).T
    ratio = torch.pdist(y) / torch.pdist(x)
    assert (ratio - 1).abs().max() < 0.15  # Johnson-Lindenstrauss: about sqrt(2 / k) typical error
    assert abs(ratio.mean().item() - 1) < 0.03


def test_reduce_via_cli(net2brain, tmp_path, images):
    out = tmp_path / "srp.h5"
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", images,
                       "--out", out, "--image-size", 16, "--reduce", "srp:10", "--layers", "features.0,head")
    assert result.code == 0, result
    with h5py.File(out) as file:
        assert file["layers/features.0"].shape == (7, 10) and file["layers/features.0"].attrs["reduce"] == "srp:10"
        assert file["layers/head"].attrs["reduce"] == "none" and file.attrs["reduce"] == "srp:10"
    assert net2brain("extract", "--model", factory("tiny_cnn"), "--stimuli", images, "--out", tmp_path / "x.h5",
                     "--reduce", "pca:3").code == 2


def write_video(path, frames: int, size: int = 32):
    """A video whose frame i is a flat colour, so sampled frames are recognisable."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.zeros((size, size, 3), dtype=np.uint8)
            pixels[..., i % 3] = (40 + 20 * i) % 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decoded_frames(path):
    import av

    with av.open(str(path)) as container:
        return [frame.to_image().convert("RGB") for frame in container.decode(video=0)]


@pytest.mark.parametrize("per_frame", [False, True])
def test_video_frames(net2brain, tmp_path, per_frame):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "clip_1.mp4", 10)
    write_video(folder / "clip_2.mp4", 7)
    out = tmp_path / "video.h5"
    args = ["--per-frame"] if per_frame else []
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", folder, "--out", out,
                       "--image-size", 32, "--frames", 4, "--layers", "pool,head", *args)
    assert result.code == 0, result
    model = load_model(factory("tiny_cnn"), weights="random", device="cpu").module
    pipeline = transforms.Compose([transforms.Resize(36), transforms.CenterCrop(32), transforms.ToTensor(),
                                   transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with h5py.File(out) as file:
        for row, (name, total) in enumerate([("clip_1.mp4", 10), ("clip_2.mp4", 7)]):
            frames = decoded_frames(folder / name)
            assert len(frames) == total
            wanted = {10: [0, 3, 6, 9], 7: [0, 2, 4, 6]}[total]  # evenly spaced, first and last included
            batch = torch.stack([pipeline(frames[i]) for i in wanted])
            expected = reference_outputs(model, batch, ["head"])["head"]
            stored = file["layers/head"][row]
            if per_frame:
                assert file["layers/head"].shape == (2, 4, 5)
                np.testing.assert_allclose(stored, expected.numpy(), rtol=1e-5, atol=1e-6)
            else:
                assert file["layers/head"].shape == (2, 5)
                np.testing.assert_allclose(stored, expected.mean(0).numpy(), rtol=1e-5, atol=1e-6)


def test_core_extract_to_file(tmp_path, images):
    loaded = load_model(factory("tiny_cnn"), weights="random", device="cpu", image_size=16)
    plan = plan_extraction(loaded, "top")
    seen = []
    path = extract_to_file(loaded, discover_stimuli(images), tmp_path / "a.h5", layers="top", batch_size=3,
                           progress=lambda done, total: seen.append((done, total))).path
    assert seen == [(0, 7), (3, 7), (6, 7), (7, 7)]
    with h5py.File(path) as file:
        assert "_rows_done" not in file and list(file["layers"]) == plan.layers
        assert file["layers/features.0"].chunks[0] >= 1


def test_timm_model_with_its_own_preprocessing(net2brain, tmp_path, images):
    """A timm ViT: timm's own evaluation transform and a plain hook give the same rows."""
    import timm

    out = tmp_path / "vit.h5"
    result = net2brain("extract", "--model", "vit_tiny_patch16_224", "--weights", "random", "--seed", 2,
                       "--stimuli", images, "--out", out, "--layers", "blocks.11,head", "--batch-size", 7)
    assert result.code == 0, result
    torch.manual_seed(2)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    paths = sorted(images.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    expected = reference_outputs(model, batch, ["blocks.11", "head"])
    with h5py.File(out) as file:
        np.testing.assert_allclose(file["layers/blocks.11"][()], expected["blocks.11"][:, 0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(file["layers/head"][()], expected["head"].numpy(), rtol=1e-5, atol=1e-5)
        assert file.attrs["source"] == "timm"


def test_torchscript_model_via_cli(net2brain, tmp_path, images):
    from tests.toy_models import Features

    torch.manual_seed(0)
    module = Features().eval()
    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    listing = net2brain("layers", path, "--image-size", 16)
    assert listing.code == 0, listing
    assert [line.split()[1] for line in listing.out.splitlines()] == ["stage1", "logits"]
    out = tmp_path / "ts.h5"
    result = net2brain("extract", "--model", path, "--stimuli", images, "--out", out, "--image-size", 16)
    assert result.code == 0, result
    paths = sorted(images.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    with torch.no_grad():
        expected = module(reference_batch(paths, 16, 18))
    with h5py.File(out) as file:
        assert list(file["layers"]) == ["stage1", "logits"] and file.attrs["source"] == "torchscript"
        np.testing.assert_allclose(file["layers/logits"][()], expected["logits"].numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(file["layers/stage1"][()], expected["stage1"].numpy(), rtol=1e-6, atol=1e-6)


def test_progress_bar_on_a_terminal(net2brain, tmp_path, images, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", images,
                       "--out", tmp_path / "a.h5", "--image-size", 16)
    assert result.code == 0, result
    assert "extract" in result.err and "7/7" in result.err


def test_values_beyond_float16_are_refused_where_they_are_made(tmp_path, images):
    """float16 ends at 65504: a row that would be stored as infinity stops the run naming the
    layer, the stimulus and the dtype that avoids it; nothing is written."""
    (tmp_path / "nets.py").write_text(
        "import torch\nclass Scale(torch.nn.Module):\n    def forward(self, x):\n        return x.mean(dim=(2, 3)) * 0 + 7e4\n"
        "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.scale = Scale()\n"
        "    def forward(self, x):\n        return self.scale(x)\ndef build():\n    return Net()\n")
    with pytest.raises(ConfigError, match=r"layer 'scale' reaches 70000 for stimulus 'img_1.png', beyond the range of "
                                          r"`dtype` float16 \(it would be stored as infinity\); use `dtype=float32`"):
        extract_to_file(f"{tmp_path / 'nets.py'}:build", images, tmp_path / "acts.h5", dtype="float16", image_size=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "nets.py"]
    extract_to_file(f"{tmp_path / 'nets.py'}:build", images, tmp_path / "acts.h5", image_size=16)  # float32 holds it


def test_a_model_output_that_is_not_finite_is_refused(tmp_path, images):
    (tmp_path / "nets.py").write_text(
        "import torch\nclass Bad(torch.nn.Module):\n    def forward(self, x):\n        return x.mean(dim=(2, 3)) * float('nan')\n"
        "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.bad = Bad()\n"
        "    def forward(self, x):\n        return self.bad(x)\ndef build():\n    return Net()\n")
    with pytest.raises(ModelError, match=r"model output of layer 'bad' is NaN or infinite for stimulus 'img_1.png'"):
        extract_to_file(f"{tmp_path / 'nets.py'}:build", images, tmp_path / "acts.h5", image_size=16)


def test_finite_values_whose_sum_overflows_are_kept(tmp_path, images):
    """The finite check sums a batch first; a sum beyond float32 (finite values near its
    maximum) sends it to the element-wise test, which lets the values through."""
    (tmp_path / "nets.py").write_text(
        "import torch\nclass Big(torch.nn.Module):\n    def forward(self, x):\n        return x.mean(dim=(2, 3)) * 0 + 3e38\n"
        "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.big = Big()\n"
        "    def forward(self, x):\n        return self.big(x)\ndef build():\n    return Net()\n")
    extract_to_file(f"{tmp_path / 'nets.py'}:build", images, tmp_path / "acts.h5", image_size=16)
    _, layers = read_activations(tmp_path / "acts.h5")
    assert np.isfinite(layers["big"]).all() and (layers["big"] == np.float32(3e38)).all()
