"""Benchmark: `extract` on networks of other tasks against a bare batched forward pass.

* A video network, R(2+1)D-18 (random weights), on 32 generated clips of 16 frames at
  112 px: `extract` (decoding, clip sampling, transforms and writing included) against
  the bare forward pass over the same clips, preprocessed beforehand; and, for
  comparison, what image-only toolboxes do: the frames one by one through the network's
  2-D counterpart (ResNet-18).
* A detection network (Faster R-CNN MobileNet-V3 FPN) and a segmentation network
  (LR-ASPP MobileNet-V3) on 32 images: `extract` against the bare forward pass.

Each timing is the best of interleaved runs (the machine is shared). Run with:

    pytest tests/benchmarks/test_task_models_speed.py -m benchmark -s
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from net2brain_fovex.demo.synthetic import shape_stimuli
from net2brain_fovex.extraction.activations import extract_to_file, plan_extraction
from net2brain_fovex.extraction.stimuli import discover_stimuli, load_image, load_video_clips
from net2brain_fovex.models.layers import forward
from net2brain_fovex.models.loading import load_model

pytestmark = pytest.mark.benchmark

CLIPS, FRAMES, SIDE, IMAGES, BATCH, REPEATS = 32, 16, 112, 32, 8, 2


def write_clip(path, seed: int) -> None:
    """16 frames of a shape drifting over a textured background."""
    import av

    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for t in range(FRAMES):
            pixels = background.copy()
            pixels[20 + 2 * t:60 + 2 * t, 30:70] = (255, 40 * (seed % 6), 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-clips")
    for index in range(CLIPS):
        write_clip(folder / f"clip_{index:02d}.mp4", index)
    return folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-images")
    base = shape_stimuli(size=320, seed=0)
    for index in range(IMAGES):
        base[index % len(base)].image.rotate(7.0 * index).save(folder / f"img_{index:02d}.jpg", quality=90)
    return folder


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(loaded, stimuli, inputs, tmp_path, layers="top") -> tuple[float, float, list[str]]:
    """(bare seconds, extract seconds, layers): the best of interleaved runs."""
    plan = plan_extraction(loaded, layers)

    def bare():
        with torch.inference_mode():
            for start in range(0, len(inputs), BATCH):
                forward(loaded, inputs[start:start + BATCH])

    runs = iter(range(100))

    def ours():
        out = tmp_path / f"acts{next(runs)}.h5"
        extract_to_file(loaded, stimuli, out, layers=plan.layers, batch_size=BATCH)
        out.unlink()

    bare()  # warm-up
    bare_times, our_times = [], []
    for _ in range(REPEATS):
        bare_times.append(timed(bare))
        our_times.append(timed(ours))
    return min(bare_times), min(our_times), plan.layers


def test_video_network_speed(clip_folder, tmp_path):
    loaded = load_model("r2plus1d_18", weights="random", device="cpu")
    stimuli = discover_stimuli(clip_folder)
    crop, normalise = loaded.preprocessing.crop_image, loaded.preprocessing.normalise
    clips = torch.stack([normalise(torch.stack([crop(frame) for frame in load_video_clips(s.path, FRAMES)[0]]))
                         for s in stimuli])  # (clips, frames, 3, 112, 112)
    t_bare, t_ours, layers = compare(loaded, stimuli, clips, tmp_path)
    image_model = load_model("resnet18", weights="random", device="cpu", image_size=SIDE)
    frames = clips.flatten(0, 1)

    def frame_by_frame():
        with torch.inference_mode():
            for frame in frames:
                image_model.module(frame.unsqueeze(0))

    t_frames = min(timed(frame_by_frame) for _ in range(REPEATS))
    print(
        f"\nvideo benchmark: r2plus1d_18 (random), {CLIPS} clips of {FRAMES} frames at {SIDE} px, batch {BATCH}, "
        f"CPU x{torch.get_num_threads()}, layers {', '.join(layers)}\n"
        f"  bare batched forward over the clips   {t_bare:6.2f} s   1.00x\n"
        f"  net2brain extract (decoding included) {t_ours:6.2f} s   {t_ours / t_bare:.2f}x (target <= 1.25x)\n"
        f"  frames one by one through resnet18    {t_frames:6.2f} s   {t_frames / t_ours:.2f}x extract's time"
    )
    assert t_ours / t_bare <= 1.25


@pytest.mark.parametrize("model", ["fasterrcnn_mobilenet_v3_large_fpn", "lraspp_mobilenet_v3_large"])
def test_detection_and_segmentation_speed(image_folder, tmp_path, model):
    loaded = load_model(model, weights="random", device="cpu")
    stimuli = discover_stimuli(image_folder)
    images = loaded.preprocessing.normalise(torch.stack([loaded.preprocessing.crop_image(load_image(s.path))
                                                         for s in stimuli]))
    t_bare, t_ours, layers = compare(loaded, stimuli, images, tmp_path)
    print(
        f"\n{loaded.task} benchmark: {model} (random), {IMAGES} images at {loaded.preprocessing.crop} px, batch {BATCH}, "
        f"CPU x{torch.get_num_threads()}, layers {', '.join(layers)}\n"
        f"  bare batched forward   {t_bare:6.2f} s   1.00x\n"
        f"  net2brain extract      {t_ours:6.2f} s   {t_ours / t_bare:.2f}x (target <= 1.25x)"
    )
    assert t_ours / t_bare <= 1.25
