"""The cornet source: CORnet-Z, -R, -RT and -S, their official state-dict layout, time
steps, weights from the torch hub cache, and extraction through the toolbox."""
from __future__ import annotations

import copy
import functools

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from net2brain_fovex.errors import UnknownNameError, WeightsError
from net2brain_fovex.extraction.activations import extract_to_file
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.registry import TASKS
from net2brain_fovex.models.sources import find_source, list_models
from net2brain_fovex.models.zoo import cornet
from tests.conftest import write_images

NAMES = ("cornet_z", "cornet_r", "cornet_rt", "cornet_s")
AREAS = ("V1", "V2", "V4", "IT")
OFFICIAL_FILES = {
    "cornet_z": "cornet_z-5c427c9c.pth",
    "cornet_r": "cornet_r-5930a990.pth",
    "cornet_rt": "cornet_rt-933c001c.pth",
    "cornet_s": "cornet_s-1d3f7974.pth",
}


@functools.cache
def random_model(name: str) -> torch.nn.Module:
    """One random model per name for the whole module (tests must not change it)."""
    torch.manual_seed(1)
    return cornet.build(name, False).module.eval()


def hooked_outputs(model, batch, names):
    """The literal way: one forward hook per module keeping its last output, a plain
    forward pass."""
    got, modules = {}, dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o)) for n in names]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return got


def test_catalogue():
    entries = cornet.entries()
    assert [e.name for e in entries] == list(NAMES)
    assert all(e.task == "brain-inspired" and e.input == "image" and e.pretrained for e in entries)
    assert "brain-inspired" in TASKS
    assert [entry.name for _, entry in list_models(source="cornet")] == list(NAMES)
    for spelling in ("cornet_s", "CORnet-S", "cornet-rt", "CORNET_Z", "CORnet-R"):
        assert cornet.offers(spelling)
    for other in ("cornet", "cornet_x", "resnet18", "CORnet-SS"):
        assert not cornet.offers(other)
    assert find_source("CORnet-S") == "cornet"  # auto: neither torchvision nor timm claims it


# key count, parameter count and a few keys with their shapes, from the reference
# implementation (github.com/dicarlolab/CORnet)
LAYOUT = {
    "cornet_z": (10, 2_071_656, {"V1.conv.weight": (64, 3, 7, 7), "IT.conv.bias": (512,),
                                 "decoder.linear.weight": (1000, 512)}),
    "cornet_r": (30, 5_208_936, {"V1.conv_input.weight": (64, 3, 7, 7), "V2.norm_input.weight": (128,),
                                 "IT.conv1.weight": (512, 512, 3, 3), "decoder.linear.bias": (1000,)}),
    "cornet_rt": (30, 5_208_936, {"V1.conv_input.weight": (64, 3, 7, 7), "V4.norm1.bias": (256,),
                                  "IT.conv_input.weight": (512, 256, 3, 3)}),
    "cornet_s": (164, 53_416_616, {"V1.conv1.weight": (64, 3, 7, 7), "V1.norm2.running_mean": (64,),
                                   "V2.skip.weight": (128, 128, 1, 1), "V4.conv2.weight": (1024, 1024, 3, 3),
                                   "V4.norm1_3.num_batches_tracked": (), "IT.norm3_1.running_var": (512,),
                                   "decoder.linear.weight": (1000, 512)}),
}


@pytest.mark.parametrize("name", NAMES)
def test_official_state_dict_layout(name):
    keys, parameters, shapes = LAYOUT[name]
    state = random_model(name).state_dict()
    assert len(state) == keys
    assert sum(p.numel() for p in random_model(name).parameters()) == parameters
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert list(dict.fromkeys(k.split(".")[0] for k in state)) == [*AREAS, "decoder"]


def test_built_record():
    built = cornet.build("CORnet-Z", False)
    assert isinstance(built.module, cornet.CORnetZ)
    assert built.task == "brain-inspired" and built.input == "image" and built.class_scores and built.call is None
    assert (built.preprocessing.resize, built.preprocessing.crop) == (256, 224)
    assert built.preprocessing.mean == (0.485, 0.456, 0.406) and built.preprocessing.std == (0.229, 0.224, 0.225)
    executed = [name for name, _ in built.module.named_modules() if name]
    assert built.top(built.module, executed) == [*AREAS, "decoder"]


@pytest.mark.parametrize("name", NAMES)
def test_build_shapes_on_64_px(name):
    model = random_model(name)
    outputs = hooked_outputs(model, torch.randn(1, 3, 64, 64), [*AREAS, "decoder"])
    shapes = {n: tuple(t.shape) for n, t in outputs.items()}
    assert shapes == {"V1": (1, 64, 16, 16), "V2": (1, 128, 8, 8), "V4": (1, 256, 4, 4), "IT": (1, 512, 2, 2),
                      "decoder": (1, 1000)}
    assert all(isinstance(t, torch.Tensor) for t in outputs.values())


def unrolled(model, image, *, same_step):
    """CORnet-R (`same_step`) or CORnet-RT written out step by step as the official code
    runs them, with the zero drive of V2, V4 and IT at the first step at the fixed size
    of a 64 px image."""
    first_step_size = {"V2": 8, "V4": 4, "IT": 2}

    def area_step(name, inp, state):
        area = getattr(model, name)
        if inp is None:
            drive = torch.zeros(len(image), area.conv1.in_channels, first_step_size[name], first_step_size[name])
        else:
            drive = torch.relu(area.norm_input(area.conv_input(inp)))
        skip = drive if state is None else drive + state
        return torch.relu(area.norm1(area.conv1(skip)))

    outputs = {"V1": area_step("V1", image, None)}
    for name in AREAS[1:]:
        outputs[name] = area_step(name, None, None)
    for _ in range(4):
        previous = dict(outputs)
        for index, name in enumerate(AREAS):
            below = outputs if same_step else previous
            inp = image if index == 0 else below[AREAS[index - 1]]
            outputs[name] = area_step(name, inp, previous[name])
    return model.decoder(outputs["IT"]), outputs


@pytest.mark.parametrize("name, same_step", [("cornet_r", True), ("cornet_rt", False)])
def test_recurrent_schedule_matches_the_literal_unrolling(name, same_step):
    model = random_model(name)
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    recorded = hooked_outputs(model, image, [*AREAS, "V2.conv_input"])
    with torch.no_grad():
        expected, areas = unrolled(model, image, same_step=same_step)
        got = model(image)
    torch.testing.assert_close(got, expected)
    for area in AREAS:  # the hook keeps the last time step
        torch.testing.assert_close(recorded[area], areas[area])
    calls = []
    handle = model.V2.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    assert len(calls) == 5


def test_cornet_r_and_rt_differ_only_in_the_schedule():
    state = random_model("cornet_r").state_dict()
    rt = cornet.CORnetRT().eval()
    rt.load_state_dict(state)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert not torch.allclose(random_model("cornet_r")(image), rt(image))


def test_cornet_s_repeats_its_areas():
    """V2, V4 and IT run their bottleneck 2, 4 and 2 times, downsampling in the first
    repetition only."""
    model = random_model("cornet_s")
    shapes: dict[str, list] = {area: [] for area in AREAS[1:]}
    handles = [getattr(model, area).conv2.register_forward_hook(
        lambda m, i, o, area=area: shapes[area].append(tuple(o.shape[-2:]))) for area in AREAS[1:]]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
    finally:
        for handle in handles:
            handle.remove()
    assert shapes == {"V2": [(8, 8)] * 2, "V4": [(4, 4)] * 4, "IT": [(2, 2)] * 2}


def official_checkpoint(model) -> dict:
    """What the official files hold: the state dict of an nn.DataParallel model under
    "state_dict", beside the training epoch."""
    return {"epoch": 25, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_weights_from_the_torch_hub_cache(name, torch_home):
    reference = copy.deepcopy(random_model(name))
    torch.nn.init.constant_(reference.decoder.linear.bias, 0.5)  # unlike any random initialisation
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    path = checkpoints / OFFICIAL_FILES[name]
    torch.save(official_checkpoint(reference), path)
    try:
        loaded = load_model(name, source="cornet", weights="pretrained", device="cpu")
    finally:
        path.unlink()
    assert loaded.source == "cornet" and loaded.weights == "pretrained"
    ours = loaded.module.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in reference.state_dict().items())
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(image), reference(image), rtol=0, atol=0)


def test_official_file_as_weights_path(tmp_path):
    reference = copy.deepcopy(random_model("cornet_rt"))
    torch.nn.init.constant_(reference.decoder.linear.bias, 0.25)
    path = tmp_path / "cornet_rt-933c001c.pth"
    torch.save(official_checkpoint(reference), path)
    loaded = load_model("CORnet-RT", source="cornet", weights=str(path), device="cpu")
    assert torch.equal(loaded.module.decoder.linear.bias, reference.decoder.linear.bias)


@pytest.mark.parametrize("offline", ["1", "0"])
def test_missing_weights_say_where_to_put_them(offline, torch_home, monkeypatch):
    """Never downloaded, online or not: the message names the file, its URL and the place."""
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    expected = torch_home / "hub" / "checkpoints" / "cornet_s-1d3f7974.pth"
    with pytest.raises(WeightsError, match=(
            rf"pretrained weights for cornet_s are not in the cache \({expected} is missing\): download "
            r"https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth on a machine with internet and place it "
            rf"at {expected} \(set TORCH_HOME .*\), or pass the file as `weights=PATH`")):
        cornet.build("CORnet-S", True)


def test_missing_weights_via_cli(net2brain, torch_home, images, tmp_path):
    result = net2brain("extract", "--model", "cornet_z", "--source", "cornet", "--stimuli", images,
                       "--out", tmp_path / "a.h5")
    assert result.code == 2, result
    assert f"({torch_home / 'hub' / 'checkpoints' / 'cornet_z-5c427c9c.pth'} is missing)" in result.err
    assert "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth" in result.err
    assert "--weights PATH" in result.err
    assert not (tmp_path / "a.h5").exists()


def test_unknown_name():
    with pytest.raises(UnknownNameError, match=r"unknown CORnet model 'cornet_x'; closest: cornet_"):
        cornet.build("cornet_x", False)
    with pytest.raises(UnknownNameError, match=r"unknown model 'cornet-q'; closest: cornet_"):
        load_model("cornet-q", source="cornet", weights="random", device="cpu")


def test_layers_command_marks_the_areas(net2brain):
    result = net2brain("layers", "cornet_z", "--source", "cornet", "--image-size", 64)
    assert result.code == 0, result
    marked = [line.split()[1] for line in result.out.splitlines() if line.startswith("*")]
    assert marked == [*AREAS, "decoder"]
    assert "V1.output" in result.out


@pytest.mark.parametrize("name", NAMES)
def test_extraction_equals_plain_hooks(name, tmp_path):
    """The toolbox's `top` extraction of a recurrent CORnet keeps each area's last time
    step, as a plain forward hook does."""
    images = write_images(tmp_path / "images", 3, size=40)
    loaded = load_model(name, source="cornet", weights="random", seed=5, device="cpu", image_size=32)
    out = extract_to_file(loaded, images, tmp_path / "acts.h5", layers="top", batch_size=2).path
    paths = sorted(images.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    batch = torch.stack([loaded.preprocessing(Image.open(p).convert("RGB")) for p in paths])
    parts = [hooked_outputs(loaded.module, part, [*AREAS, "decoder"]) for part in batch.split(2)]  # as batched
    with h5py.File(out) as file:
        assert set(file["layers"]) == {*AREAS, "decoder"}
        for layer in [*AREAS, "decoder"]:
            expected = torch.cat([part[layer] for part in parts]).reshape(len(paths), -1).numpy()
            stored = file["layers"][layer][()].reshape(len(paths), -1)
            np.testing.assert_allclose(stored, expected, rtol=1e-6, atol=1e-7)
