"""The hf source: transformers vision models from a `save_pretrained` folder or the
Hugging Face cache, their task, default layers, preprocessing and offline errors."""
from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image

from net2brain_fovex.errors import InputError, ModelError, WeightsError
from net2brain_fovex.extraction.activations import extract_to_file
from net2brain_fovex.models.layers import probe, run_layers, top_layers
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import Preprocessing
from net2brain_fovex.models.registry import TASKS
from net2brain_fovex.models.sources import find_source, list_models
from net2brain_fovex.models.zoo import hf
from tests.conftest import write_images

pytestmark = pytest.mark.filterwarnings("ignore:.*preprocessor_config.json.*:UserWarning")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
             patch_size=8)
TEXT = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=64)


def _dinov2_backbone():
    return T.Dinov2Config(**SMALL, out_indices=[1, 2], reshape_hidden_states=False)


# kind -> (model factory, image processor or None, expected record, expected top layers)
FAMILIES = {
    "vit": (
        lambda: T.ViTForImageClassification(T.ViTConfig(**SMALL, num_labels=5)),
        lambda: T.ViTImageProcessor(size={"height": 32, "width": 32}),
        dict(task="classification", input="image", class_scores=True, prefix_tokens=1),
        ["vit.layers.0", "vit.layers.1", "classifier"],
    ),
    "dinov2": (
        lambda: T.Dinov2Model(T.Dinov2Config(**SMALL)),
        lambda: T.BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}),
        dict(task="self-supervised", input="image", class_scores=False, prefix_tokens=1),
        ["encoder.layer.0", "encoder.layer.1", "layernorm"],
    ),
    "dinov2-registers": (
        lambda: T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(**SMALL, num_register_tokens=4)),
        None,
        dict(task="self-supervised", input="image", class_scores=False, prefix_tokens=5),
        ["encoder.layer.0", "encoder.layer.1", "layernorm"],
    ),
    "dpt": (
        lambda: T.DPTForDepthEstimation(T.DPTConfig(**SMALL, backbone_out_indices=[0, 1], neck_hidden_sizes=[8, 16],
                                                    reassemble_factors=[2, 1], fusion_hidden_size=16,
                                                    head_hidden_size=8)),
        lambda: T.DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=True, ensure_multiple_of=8),
        dict(task="depth", input="image", class_scores=False, prefix_tokens=1),
        ["dpt.encoder.layer.0", "dpt.encoder.layer.1", "neck.fusion_stage.layers.0", "neck.fusion_stage.layers.1",
         "head"],
    ),
    "depth-anything": (
        lambda: T.DepthAnythingForDepthEstimation(T.DepthAnythingConfig(
            backbone_config=_dinov2_backbone(), reassemble_hidden_size=32, neck_hidden_sizes=[8, 16],
            reassemble_factors=[2, 1], fusion_hidden_size=16, head_hidden_size=8, patch_size=8)),
        None,
        dict(task="depth", input="image", class_scores=False, prefix_tokens=1),
        ["backbone.encoder.layer.0", "backbone.encoder.layer.1", "neck.fusion_stage.layers.0",
         "neck.fusion_stage.layers.1", "head"],
    ),
    "segformer": (
        lambda: T.SegformerForSemanticSegmentation(T.SegformerConfig(
            num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], num_attention_heads=[1, 2],
            decoder_hidden_size=16, num_labels=3, image_size=32, strides=[4, 2], patch_sizes=[7, 3])),
        lambda: T.SegformerImageProcessor(size={"height": 32, "width": 32}),
        dict(task="segmentation", input="image", class_scores=False, prefix_tokens=0),
        ["segformer.stages.0", "segformer.stages.1", "decode_head"],
    ),
    "videomae": (
        lambda: T.VideoMAEForVideoClassification(T.VideoMAEConfig(**SMALL, num_frames=4, tubelet_size=2,
                                                                   num_labels=5)),
        lambda: T.VideoMAEImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}),
        dict(task="video", input="video", class_scores=True, prefix_tokens=0, clip_frames=4, time_axis=2),
        ["videomae.encoder.layer.0", "videomae.encoder.layer.1", "classifier"],
    ),
    "detr": (
        lambda: T.DetrForObjectDetection(T.DetrConfig(
            use_timm_backbone=False, backbone_config=T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16],
                                                                    depths=[1, 1], out_features=["stage1", "stage2"]),
            d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5, num_labels=3)),
        lambda: T.DetrImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}),
        dict(task="detection", input="image", class_scores=False, prefix_tokens=0),
        ["model.backbone.model.encoder.stages.0", "model.backbone.model.encoder.stages.1", "model.encoder.layers.0",
         "class_labels_classifier", "bbox_predictor"],
    ),
    "mask2former": (
        lambda: T.Mask2FormerForUniversalSegmentation(T.Mask2FormerConfig(
            backbone_config=T.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                         num_heads=[1, 1, 1, 1], window_size=2,
                                         out_features=["stage1", "stage2", "stage3", "stage4"]),
            feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32, dim_feedforward=32,
            encoder_layers=1, decoder_layers=2, num_attention_heads=2, num_queries=5, num_labels=3)),
        lambda: T.Mask2FormerImageProcessor(size={"height": 64, "width": 64}),
        dict(task="segmentation", input="image", class_scores=False, prefix_tokens=0),
        [*(f"model.pixel_level_module.encoder.swin.encoder.layers.{i}" for i in range(4)),
         "model.pixel_level_module.decoder.mask_projection", "class_predictor"],
    ),
    "clip": (
        lambda: T.CLIPModel(T.CLIPConfig(text_config=TEXT, vision_config=SMALL, projection_dim=12)),
        lambda: T.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        dict(task="vision-language", input="image", class_scores=False, prefix_tokens=1),
        ["vision_model.encoder.layers.0", "vision_model.encoder.layers.1", "visual_projection"],
    ),
}


def _save(folder: Path, kind: str, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    make_model, make_processor, _, _ = FAMILIES[kind]
    torch.manual_seed(seed)
    model = make_model().eval()
    model.save_pretrained(folder)
    if make_processor is not None:
        make_processor().save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> (folder, the saved model), each made once."""
    made = {}

    def get(kind: str) -> tuple[Path, torch.nn.Module]:
        if kind not in made:
            made[kind] = _save(tmp_path_factory.mktemp(kind), kind)
        return made[kind]

    return get


def _batch(loaded, size: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    crop = loaded.preprocessing.crop
    if loaded.is_video:
        return torch.randn(size, loaded.clip_frames, 3, crop, crop)
    return torch.randn(size, 3, crop, crop)


def _hooked(module: torch.nn.Module, batch: torch.Tensor, names: list[str]) -> tuple[dict, object]:
    """A plain forward hook on each module, the first tensor of a tuple output; a whole
    CLIP model runs its image side only."""
    outputs, handles = {}, []
    modules = dict(module.named_modules())

    def hook(name):
        def record(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            elif isinstance(output, dict):
                output = next(iter(output.values()))
            outputs[name] = output.detach().clone()
        return record

    try:
        handles = [modules[name].register_forward_hook(hook(name)) for name in names]
        with torch.no_grad():
            if isinstance(module, T.CLIPModel):
                result = module.get_image_features(pixel_values=batch)
            else:
                result = module(pixel_values=batch)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, result


def _same_weights(built: torch.nn.Module, reference: torch.nn.Module) -> bool:
    """Every tensor of `built` equals the reference's of the same name (a CLIP tower holds
    a subset of the whole model's)."""
    theirs = reference.state_dict()
    return all(key in theirs and torch.equal(value, theirs[key]) for key, value in built.state_dict().items())


# ------------------------------------------------------------------ catalogue and lookup
def test_catalogue():
    catalogue = hf.entries()
    names = [entry.name for entry in catalogue]
    assert 40 <= len(catalogue) <= 80 and len(set(names)) == len(names)
    assert {entry.task for entry in catalogue} == {"classification", "segmentation", "detection", "depth", "video",
                                                   "vision-language", "self-supervised"}
    assert all(entry.task in TASKS for entry in catalogue)
    assert all((entry.input == "video") == (entry.task == "video") for entry in catalogue)
    assert all(entry.pretrained and hf.offers(entry.name) and hf._HUB_ID.fullmatch(entry.name) for entry in catalogue)
    tasks = {entry.name: entry.task for entry in catalogue}
    assert tasks["facebook/dinov2-small"] == "self-supervised" and tasks["Intel/dpt-large"] == "depth"
    assert tasks["MCG-NJU/videomae-base"] == "video" and tasks["openai/clip-vit-base-patch32"] == "vision-language"
    assert tasks["nvidia/segformer-b0-finetuned-ade-512-512"] == "segmentation"
    assert tasks["facebook/detr-resnet-50"] == "detection"
    assert tasks["google/vit-base-patch16-224"] == "classification"


def test_listing_by_source_and_task():
    depth = [entry.name for source, entry in list_models("hf", task="depth")]
    assert "LiheYoung/depth-anything-small-hf" in depth and "Intel/dpt-hybrid-midas" in depth
    assert all(source == "hf" for source, _ in list_models("hf"))


def test_offers(saved, tmp_path):
    folder, _ = saved("vit")
    assert hf.offers("facebook/dinov2-small") and hf.offers("someone/any-model.v2") and hf.offers(str(folder))
    assert not hf.offers("resnet18") and not hf.offers("a/b/c") and not hf.offers(str(tmp_path))
    assert find_source("someone/any-model") == "hf" and find_source(str(folder)) == "hf"
    assert find_source("resnet18") == "torchvision"


# ------------------------------------------------------------------ building each family
@pytest.mark.parametrize("kind", list(FAMILIES))
def test_pretrained_and_random_builds(kind, saved):
    folder, reference = saved(kind)
    _, _, record, expected_top = FAMILIES[kind]
    built = hf.build(str(folder), True)
    for field, value in record.items():
        assert getattr(built, field) == value, field
    assert _same_weights(built.module, reference) and not built.module.training
    torch.manual_seed(3)
    random_a = hf.build(str(folder), False).module
    torch.manual_seed(3)
    random_b = hf.build(str(folder), False).module
    assert random_a.state_dict().keys() == built.module.state_dict().keys()
    assert _same_weights(random_a, random_b) and not _same_weights(random_a, reference)
    loaded = load_model(str(folder), source="hf", weights="pretrained", device="cpu")
    assert top_layers(loaded, list(probe(loaded))) == expected_top


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_layers_equal_plain_hooks(kind, saved):
    """The toolbox's top layers equal plain forward hooks on the saved model, and the
    output is the reference's (logits for classifiers)."""
    folder, reference = saved(kind)
    loaded = load_model(str(folder), source="hf", weights="pretrained", device="cpu")
    batch = _batch(loaded)
    names = top_layers(loaded, list(probe(loaded)))
    ours = run_layers(loaded, batch, names)
    expected, result = _hooked(reference, batch, names)
    assert list(ours) == names
    for name in names:
        torch.testing.assert_close(ours[name], expected[name], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        output = loaded.call(loaded.module, batch)
    if loaded.class_scores:
        assert isinstance(output, torch.Tensor)
        torch.testing.assert_close(output, result.logits)


def test_extraction_equals_plain_hooks(saved, tmp_path):
    folder, reference = saved("vit")
    images = write_images(tmp_path / "images", 3, size=40)
    out = extract_to_file(str(folder), images, tmp_path / "acts.h5", source="hf", weights="pretrained", device="cpu",
                          layers="top", tokens="all", batch_size=2).path
    loaded = load_model(str(folder), source="hf", weights="pretrained", device="cpu")
    paths = sorted(images.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    batch = torch.stack([loaded.preprocessing(Image.open(p).convert("RGB")) for p in paths])
    names = ["vit.layers.0", "vit.layers.1", "classifier"]
    expected, _ = _hooked(reference, batch, names)
    with h5py.File(out) as file:
        assert set(file["layers"]) == set(names)
        for name in names:
            np.testing.assert_allclose(file["layers"][name][()].reshape(3, -1),
                                       expected[name].reshape(3, -1).numpy(), rtol=1e-5, atol=1e-6)


def test_clip_tower_takes_the_outer_projection_size(saved):
    folder, reference = saved("clip")
    built = hf.build(str(folder), True)
    assert isinstance(built.module, T.CLIPVisionModelWithProjection)
    assert built.module.visual_projection.out_features == 12
    assert not any(key.startswith("text_model") for key in built.module.state_dict())


def test_distilled_deit_averages_its_two_heads(tmp_path):
    torch.manual_seed(0)
    model = T.DeiTForImageClassificationWithTeacher(T.DeiTConfig(**SMALL, num_labels=5)).eval()
    model.save_pretrained(tmp_path)
    built = hf.build(str(tmp_path), True)
    assert isinstance(built.module, T.DeiTForImageClassificationWithTeacher) and built.prefix_tokens == 2
    assert _same_weights(built.module, model) and built.class_scores
    batch = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(built.call(built.module, batch), model(pixel_values=batch).logits)
    assert built.top(built.module, [name for name, _ in built.module.named_modules()])[-2:] == [
        "cls_classifier", "distillation_classifier"]


def test_mae_runs_unmasked_with_its_patches_in_order(tmp_path):
    torch.manual_seed(0)
    model = T.ViTMAEForPreTraining(T.ViTMAEConfig(**SMALL, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                                                  decoder_intermediate_size=32, decoder_num_attention_heads=2))
    model.save_pretrained(tmp_path)
    built = hf.build(str(tmp_path), True)
    assert built.task == "self-supervised" and built.prefix_tokens == 1
    batch = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, second = built.call(built.module, batch), built.call(built.module, batch)
    assert first.last_hidden_state.shape == (2, 17, 32) and not first.mask.any()
    assert torch.equal(first.ids_restore, torch.arange(16).expand(2, -1))
    torch.testing.assert_close(first.last_hidden_state, second.last_hidden_state, rtol=0, atol=0)


def test_other_input_sizes_interpolate_position_embeddings(saved):
    folder, _ = saved("vit")
    loaded = load_model(str(folder), source="hf", weights="pretrained", device="cpu", image_size=48)
    outputs = probe(loaded)
    assert outputs["vit.layers.1"].shape == (1, 1 + 36, 32)


def test_classifier_output_is_class_scores_for_explain(saved):
    from net2brain_fovex.explain.attributions import check_classifier

    folder, _ = saved("vit")
    check_classifier(load_model(str(folder), source="hf", weights="pretrained", device="cpu"))
    with pytest.raises(ModelError, match=r"is a depth model"):
        check_classifier(load_model(str(saved("dpt")[0]), source="hf", weights="pretrained", device="cpu"))


# ------------------------------------------------------------------ preprocessing
@pytest.mark.parametrize("settings, expected", [
    ({"size": {"height": 224, "width": 224}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 2},
     Preprocessing(resize=224, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode="squash")),
    ({"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
      "resample": 3},
     Preprocessing(resize=256, crop=224, interpolation="bicubic")),
    ({"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": False},
     Preprocessing(resize=224, crop=224)),
    ({"size": {"height": 384, "width": 512}},
     Preprocessing(resize=(384, 512), crop=384, resize_mode="squash")),
    ({"size": {"shortest_edge": 224}, "crop_pct": 0.875, "resample": 3},
     Preprocessing(resize=256, crop=224, interpolation="bicubic")),
    ({"size": {"shortest_edge": 384}, "crop_pct": 0.875},
     Preprocessing(resize=384, crop=384, resize_mode="squash")),
    ({"size": {"height": 518, "width": 518}, "keep_aspect_ratio": True, "ensure_multiple_of": 14, "resample": 0},
     Preprocessing(resize=518, crop=518, interpolation="nearest")),
    ({"size": {"shortest_edge": 800, "longest_edge": 1333}},
     Preprocessing(resize=800, crop=800)),
    ({"size": {"height": 32, "width": 32}, "do_normalize": False},
     Preprocessing(resize=32, crop=32, mean=(0.0,) * 3, std=(1.0,) * 3, resize_mode="squash")),
    ({"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
      "rescale_factor": 1 / 127.5, "offset": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
     Preprocessing(resize=256, crop=224, mean=(0.75,) * 3, std=(0.25,) * 3)),
])
def test_processor_settings_map_onto_the_preprocessing(settings, expected):
    ours = hf.preprocessing(settings)
    assert ours.as_dict().keys() == expected.as_dict().keys()
    for field, value in expected.as_dict().items():
        assert ours.as_dict()[field] == pytest.approx(value), field


def test_no_processor_config_gives_imagenet_at_the_image_size():
    assert hf.preprocessing(None, 32) == Preprocessing(resize=36, crop=32)
    assert hf.preprocessing(None) == Preprocessing(resize=256, crop=224)


@pytest.mark.parametrize("processor", [
    T.ViTImageProcessorPil(size={"height": 32, "width": 32}),
    T.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
    T.ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=0.875),
    T.BitImageProcessorPil(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}),
    T.SegformerImageProcessorPil(size={"height": 32, "width": 40}, image_mean=[0.2, 0.3, 0.4], do_resize=True),
    T.VivitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}),
], ids=lambda processor: type(processor).__name__)
def test_preprocessing_equals_the_image_processor(processor):
    """The same pixels as transformers' PIL image processors on a 40 x 52 image (a square
    one where the processor's output is not square), whose crop offsets are whole numbers
    (a half-pixel offset is rounded to even by torchvision's centre crop, down by
    transformers')."""
    rng = np.random.default_rng(0)
    settings = processor.to_dict()
    square = settings["size"].get("width", 0) != settings["size"].get("height", 0) and "height" in settings["size"]
    image = Image.fromarray(rng.integers(0, 256, (40, 40 if square else 52, 3), dtype=np.uint8))
    ours = hf.preprocessing(settings)(image)
    if isinstance(processor, T.VivitImageProcessor):
        theirs = processor(images=[[image]], return_tensors="pt")["pixel_values"][0, 0]
    else:
        theirs = processor(images=image, return_tensors="pt")["pixel_values"][0]
    if square:  # the toolbox's crop is square: the processor's 32 x 40 output, centre-cropped
        theirs = theirs[:, :, 4:36]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_preprocessing_of_a_saved_folder(saved):
    folder, _ = saved("videomae")
    assert hf.build(str(folder), False).preprocessing == Preprocessing(resize=36, crop=32, mean=(0.5,) * 3,
                                                                       std=(0.5,) * 3)


# ------------------------------------------------------------------ weights and errors
def _in_hub_cache(repo: str, kind: str) -> tuple[Path, torch.nn.Module]:
    """A model written into the Hugging Face cache as a download leaves it."""
    from huggingface_hub.constants import HF_HUB_CACHE

    commit = "0123456789abcdef0123456789abcdef01234567"
    root = Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    _, model = _save(root / "snapshots" / commit, kind, seed=7)
    return root, model


def test_pretrained_from_the_hub_cache_offline():
    root, reference = _in_hub_cache("tiny-org/tiny-vit", "vit")
    try:
        loaded = load_model("tiny-org/tiny-vit", weights="pretrained", device="cpu")
        assert loaded.source == "hf" and loaded.task == "classification"
        assert _same_weights(loaded.module, reference)
        assert loaded.preprocessing == Preprocessing(resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3,
                                                     resize_mode="squash")
    finally:
        import shutil

        shutil.rmtree(root)


@pytest.mark.parametrize("pretrained", [True, False])
def test_uncached_hub_id_offline_fails_fast(pretrained):
    start = time.monotonic()
    with pytest.raises(WeightsError, match=(
            r"the config of nobody/not-cached is not available \(.*\): on a machine with internet run "
            r"`python -c \"from transformers import AutoModel, AutoImageProcessor; "
            r"AutoModel.from_pretrained\('nobody/not-cached'\); AutoImageProcessor.from_pretrained\('nobody/not-cached'\)"
            r"\"` and copy its Hugging Face cache \(HF_HOME/hub\) to .*hub, or save the model with save_pretrained to "
            r"a folder and pass the folder as `model`")):
        hf.build("nobody/not-cached", pretrained)
    assert time.monotonic() - start < 5


def test_uncached_hub_id_via_cli(net2brain, images, tmp_path):
    result = net2brain("extract", "--model", "nobody/not-cached", "--source", "hf", "--stimuli", images,
                       "--out", tmp_path / "a.h5")
    assert result.code == 2, result
    assert "AutoModel.from_pretrained('nobody/not-cached')" in result.err and "--model" in result.err
    assert not (tmp_path / "a.h5").exists()


def test_folder_without_weights(saved, tmp_path):
    folder, _ = saved("vit")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(WeightsError, match=r"model folder .* has no weights \(.*\); save the model there with "
                                           r"save_pretrained, or use `weights=random`"):
        hf.build(str(tmp_path), True)
    assert hf.build(str(tmp_path), False).task == "classification"


def test_folder_without_config(tmp_path):
    (tmp_path / "owner").mkdir()
    with pytest.raises(InputError, match=r"model folder .*owner has no config.json; save a transformers model there"):
        hf.build(str(tmp_path / "owner"), False)


def test_text_model_is_refused(tmp_path):
    T.BertModel(T.BertConfig(**TEXT)).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match=r"\(model type bert\) is not a vision model the hf source can build"):
        hf.build(str(tmp_path), True)


def test_unknown_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelError, match=r"transformers cannot read the config of .*; the hf source builds"):
        hf.build(str(tmp_path), False)


# ------------------------------------------------------------------ command line
def test_layers_command_marks_the_blocks(net2brain, saved):
    folder, _ = saved("segformer")
    result = net2brain("layers", folder, "--source", "hf")
    assert result.code == 0, result
    marked = [line.split()[1] for line in result.out.splitlines() if line.startswith("*")]
    assert marked == ["segformer.stages.0", "segformer.stages.1", "decode_head"]


def test_video_extraction_equals_plain_hooks(saved, tmp_path):
    """A VideoMAE clip of 4 frames sampled evenly from each video, as the model takes it
    (B, T, 3, H, W)."""
    from tests.extraction.test_activations import decoded_frames, write_video

    folder, reference = saved("videomae")
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "clip_1.mp4", 10)
    write_video(videos / "clip_2.mp4", 7)
    out = extract_to_file(str(folder), videos, tmp_path / "acts.h5", source="hf", weights="pretrained", device="cpu",
                          layers="top", tokens="all").path
    loaded = load_model(str(folder), source="hf", weights="pretrained", device="cpu")
    clips = []
    for name, wanted in (("clip_1.mp4", [0, 3, 6, 9]), ("clip_2.mp4", [0, 2, 4, 6])):
        frames = decoded_frames(videos / name)
        clips.append(torch.stack([loaded.preprocessing(frames[i]) for i in wanted]))
    names = ["videomae.encoder.layer.0", "videomae.encoder.layer.1", "classifier"]
    expected, _ = _hooked(reference, torch.stack(clips), names)
    with h5py.File(out) as file:
        assert set(file["layers"]) == set(names)
        for name in names:
            np.testing.assert_allclose(file["layers"][name][()].reshape(2, -1),
                                       expected[name].reshape(2, -1).numpy(), rtol=1e-5, atol=1e-5)
