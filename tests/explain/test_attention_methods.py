"""GAE and attention rollout: against literal implementations on a tiny timm ViT and a
tiny transformers ViT (each block's attention recomputed in the test from the block's
weights with plain matmul and softmax, not through the methods' hooks), models they
refuse, the model left as it was, and `fovex explain --method gae / rollout`."""
from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
import transformers as T

from net2brain_fovex.errors import ConfigError, ModelError
from net2brain_fovex.explain.attributions import load_images, read_attributions
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.gae import gae
from net2brain_fovex.explain.methods.rollout import rollout
from net2brain_fovex.explain.registry import METHODS, RolloutParameters
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory, write_images
from tests.toy_models import TinyCNN, TinyViT

SIZE = 32
BLACK = torch.zeros(3)


def timm_vit(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, patch_size=8, depth=2,
                             num_heads=2, embed_dim=32, num_classes=5, **options)


def hf_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    config = T.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         image_size=SIZE, patch_size=8, num_labels=5)
    return T.ViTForImageClassification(config)


def batch(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, SIZE, SIZE, generator=generator), torch.tensor([0, 3, 1, 4][:n])


def context(prefix: int = 1) -> Context:
    return Context(black=BLACK, prefix_tokens=prefix)


# ------------------------------------------------------------------ literal forward passes
def attention_of(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) per head, for one image's (T, D) queries and keys."""
    tokens, width = q.shape
    d = width // heads
    q = q.reshape(tokens, heads, d).transpose(0, 1)
    k = k.reshape(tokens, heads, d).transpose(0, 1)
    return torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)  # (heads, T, T)


def attend(attention: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    heads, tokens, _ = attention.shape
    return (attention @ v.reshape(tokens, heads, -1).transpose(0, 1)).transpose(0, 1).reshape(tokens, -1)


def norm(layer, x):
    return F.layer_norm(x, x.shape[-1:], layer.weight, layer.bias, layer.eps)


def literal_timm(model, image):
    """The logits and every block's attention (heads, T, T) of one image, gradients kept."""
    x = F.conv2d(image[None], model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=8)
    x = torch.cat([model.cls_token[0], x.flatten(2)[0].T], dim=0) + model.pos_embed[0]
    attentions = []
    for block in model.blocks:
        q, k, v = (norm(block.norm1, x) @ block.attn.qkv.weight.T + block.attn.qkv.bias).chunk(3, dim=-1)
        attention = attention_of(q, k, block.attn.num_heads)
        if attention.requires_grad:
            attention.retain_grad()
        attentions.append(attention)
        x = x + attend(attention, v) @ block.attn.proj.weight.T + block.attn.proj.bias
        hidden = F.gelu(norm(block.norm2, x) @ block.mlp.fc1.weight.T + block.mlp.fc1.bias)
        x = x + hidden @ block.mlp.fc2.weight.T + block.mlp.fc2.bias
    return model.head(norm(model.norm, x)[0]), attentions


def literal_hf(model, image):
    embeddings = model.vit.embeddings
    projection = embeddings.patch_embeddings.projection
    x = F.conv2d(image[None], projection.weight, projection.bias, stride=8)
    x = torch.cat([embeddings.cls_token[0], x.flatten(2)[0].T], dim=0) + embeddings.position_embeddings[0]
    attentions = []
    for layer in model.vit.layers:
        h = norm(layer.layernorm_before, x)
        own = layer.attention
        q, k, v = (h @ p.weight.T + p.bias for p in (own.q_proj, own.k_proj, own.v_proj))
        attention = attention_of(q, k, own.num_attention_heads)
        if attention.requires_grad:
            attention.retain_grad()
        attentions.append(attention)
        x = x + attend(attention, v) @ own.o_proj.weight.T + own.o_proj.bias
        hidden = F.gelu(norm(layer.layernorm_after, x) @ layer.mlp.fc1.weight.T + layer.mlp.fc1.bias)
        x = x + hidden @ layer.mlp.fc2.weight.T + layer.mlp.fc2.bias
    return model.classifier(norm(model.vit.layernorm, x)[0]), attentions


LITERAL = {"timm": (timm_vit, literal_timm), "hf": (hf_vit, literal_hf)}


def upsampled(row: torch.Tensor) -> torch.Tensor:
    """The class token's row over 16 patch tokens as a 32 x 32 map, min-max normalised."""
    side = math.isqrt(len(row))
    big = F.interpolate(row.reshape(1, 1, side, side), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
    low, high = big.min(), big.max()
    return (big - low) / (high - low)


def literal_gae(model, literal, images, targets):
    maps = []
    for image, target in zip(images, targets, strict=True):
        model.zero_grad()
        logits, attentions = literal(model, image)
        logits[target].backward()
        tokens = attentions[0].shape[-1]
        relevance = torch.eye(tokens)
        for attention in attentions:
            weighted = (attention.grad * attention.detach()).clamp(min=0)  # (heads, T, T)
            mean = sum(weighted[h] for h in range(len(weighted))) / len(weighted)
            relevance = relevance + mean @ relevance
        maps.append(upsampled(relevance[0, 1:]))
    return torch.stack(maps)


def literal_rollout(model, literal, images, discard_ratio=0.0):
    maps = []
    for image in images:
        with torch.no_grad():
            _, attentions = literal(model, image)
        tokens = attentions[0].shape[-1]
        relevance = torch.eye(tokens)
        for attention in attentions:
            fused = attention.mean(dim=0).clone()
            count = int(discard_ratio * (tokens - 1))
            for row in range(tokens):
                order = sorted(range(1, tokens), key=lambda column, row=row: float(fused[row, column]))
                for column in order[:count]:  # the lowest weights, never the class token's (column 0)
                    fused[row, column] = 0.0
            step = 0.5 * fused + 0.5 * torch.eye(tokens)
            for row in range(tokens):
                step[row] = step[row] / step[row].sum()
            relevance = step @ relevance
        maps.append(upsampled(relevance[0, 1:]))
    return torch.stack(maps)


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("kind", list(LITERAL))
def test_literal_forward_is_the_model(kind):
    build, literal = LITERAL[kind]
    model = build().eval()
    images, _ = batch(2)
    with torch.no_grad():
        ours = torch.stack([literal(model, image)[0] for image in images])
        theirs = model(images)
    torch.testing.assert_close(ours, getattr(theirs, "logits", theirs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", list(LITERAL))
def test_gae_matches_the_literal_rule(kind):
    build, literal = LITERAL[kind]
    model = build().eval()
    images, targets = batch()
    maps = gae(model, images, targets, context()).maps
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == torch.float32
    torch.testing.assert_close(maps, literal_gae(model, literal, images, targets), rtol=0, atol=2e-5)


@pytest.mark.parametrize("kind", list(LITERAL))
@pytest.mark.parametrize("discard_ratio", [0.0, 0.5, 0.9])
def test_rollout_matches_the_literal_rule(kind, discard_ratio):
    build, literal = LITERAL[kind]
    model = build().eval()
    images, targets = batch()
    maps = rollout(model, images, targets, context(), parameters=RolloutParameters(discard_ratio=discard_ratio)).maps
    torch.testing.assert_close(maps, literal_rollout(model, literal, images, discard_ratio), rtol=0, atol=2e-5)


def test_gae_depends_on_the_target_and_rollout_does_not():
    model = timm_vit()
    images, _ = batch(2)
    one, other = torch.zeros(2, dtype=torch.long), torch.full((2,), 3)
    assert not torch.allclose(gae(model, images, one, context()).maps, gae(model, images, other, context()).maps)
    assert torch.equal(rollout(model, images, one, context()).maps, rollout(model, images, other, context()).maps)


@pytest.mark.parametrize("method", [gae, rollout])
@pytest.mark.parametrize("kind", list(LITERAL))
def test_a_batch_gives_the_maps_of_its_images_and_runs_are_the_same(method, kind):
    model = LITERAL[kind][0]()
    images, targets = batch(3)
    maps = method(model, images, targets, context()).maps
    for i in range(3):
        alone = method(model, images[i:i + 1], targets[i:i + 1], context()).maps
        torch.testing.assert_close(maps[i:i + 1], alone, rtol=0, atol=1e-5)
    assert torch.equal(maps, method(model, images, targets, context()).maps)


def test_distillation_token_is_dropped_from_the_map():
    """A distilled DeiT (class and distillation tokens): the class token's row over the patches only."""
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=SIZE, patch_size=8,
                              depth=2, num_heads=2, embed_dim=32, num_classes=5)
    images, targets = batch(2)
    assert model.num_prefix_tokens == 2
    for method in (gae, rollout):
        maps = method(model, images, targets, context(2)).maps
        assert maps.shape == (2, SIZE, SIZE) and float(maps.amax()) == 1.0


@pytest.mark.parametrize("method", [gae, rollout])
def test_the_model_is_left_as_it_was(method):
    model = timm_vit().train()
    flags = [module.fused_attn for module in model.modules() if hasattr(module, "fused_attn")]
    images, targets = batch(2)
    method(model, images, targets, context())
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert [module.fused_attn for module in model.modules() if hasattr(module, "fused_attn")] == flags
    assert not any(module._forward_hooks for module in model.modules())
    hf = hf_vit()
    implementation = hf.config._attn_implementation
    method(hf, images, targets, context())
    assert hf.config._attn_implementation == implementation == "sdpa"


# ------------------------------------------------------------------ refused models and parameters
@pytest.mark.parametrize("method", [gae, rollout])
@pytest.mark.parametrize(("model", "prefix", "message"), [
    (TinyCNN(), 0, r"explains vision transformers .* TinyCNN has no self-attention it can read"),
    (TinyViT(), 1, r"TinyViT has no self-attention it can read"),  # torch's nn.MultiheadAttention
    (timm_vit(class_token=False, global_pool="avg"), 0, r"VisionTransformer has no class token"),
    (timm_vit(global_pool="avg"), 1, r"pools the tokens \(global_pool='avg'\)"),
    (T.BeitForImageClassification(T.BeitConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                intermediate_size=64, image_size=SIZE, patch_size=8, num_labels=5)),
     1, r"BeitForImageClassification pools the tokens \(use_mean_pooling=True\)"),
    (timm_vit(), 2, r"17 tokens of VisionTransformer less its 2 prefix token\(s\) are 15, not a square"),
])
def test_models_it_cannot_explain_are_refused(method, model, prefix, message):
    images, targets = batch(2)
    with pytest.raises(ModelError, match=message):
        method(model, images, targets, context(prefix))


def test_attention_that_is_not_self_attention_over_every_token_is_refused():
    """CaiT: the class token joins late, in blocks whose attention is its row only."""
    model = timm.create_model("cait_xxs24_224", pretrained=False, img_size=SIZE, patch_size=8, embed_dim=32, depth=2,
                              num_heads=2, depth_token_only=1, num_classes=5)
    images, targets = batch(2)
    with pytest.raises(ModelError, match=r"reads global self-attention .* blocks_token_only\.0\.attn of Cait gives "
                                         r"attention of shape \(2, 2, 1, 17\) for 2 image\(s\)"):
        gae(model, images, targets, context(1))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 2.0, float("nan")])
def test_discard_ratio_out_of_range(ratio):
    with pytest.raises(ConfigError, match=rf"invalid rollout parameter `discard_ratio`: discard_ratio = {ratio!r}.*"
                                          r"\[0, 1\)"):
        RolloutParameters(discard_ratio=ratio)


def test_registry_entries():
    assert METHODS["gae"].backward and not METHODS["rollout"].backward
    assert not METHODS["gae"].layer and not METHODS["rollout"].layer


# ------------------------------------------------------------------ the command line
@pytest.fixture
def pictures(tmp_path):
    return write_images(tmp_path / "pictures", 3, size=36)


def explain_args(pictures, out, *extra):
    return ["explain", "--model", factory("tiny_timm_vit"), "--weights", "random", "--images", pictures, "--out", out,
            "--image-size", SIZE, "--batch-size", 2, *extra]


@pytest.mark.parametrize(("method", "extra", "parameters"), [
    ("gae", [], {}),
    ("rollout", ["--discard-ratio", 0.5], {"discard_ratio": 0.5}),
])
def test_through_the_cli(fovex, tmp_path, pictures, method, extra, parameters):
    out = tmp_path / f"{method}.h5"
    result = fovex(*explain_args(pictures, out, "--method", method, "--target", 2, *extra))
    assert result.code == 0, result
    content = read_attributions(out)
    assert content["maps"].shape == (3, SIZE, SIZE) and (content["targets"] == 2).all()
    assert content["attrs"]["method"] == method
    loaded = load_model(factory("tiny_timm_vit"), weights="random", seed=42, device="cpu", image_size=SIZE)
    images = load_images(discover_stimuli(pictures), loaded)
    function = METHODS[method].load()
    direct = function(loaded.module, images, torch.full((3,), 2), context(),
                      parameters=METHODS[method].parameters(**parameters))
    torch.testing.assert_close(torch.from_numpy(content["maps"]), direct.maps, rtol=0, atol=1e-5)


def test_hf_vit_through_explain(fovex, tmp_path, pictures):
    folder = tmp_path / "hf-vit"
    hf_vit().save_pretrained(folder)
    T.ViTImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(folder)
    out = tmp_path / "gae.h5"
    result = fovex("explain", "--model", folder, "--source", "hf", "--weights", "pretrained", "--images", pictures,
                   "--out", out, "--method", "gae")
    assert result.code == 0, result
    maps = read_attributions(out)["maps"]
    assert maps.shape == (3, SIZE, SIZE) and maps.max() == 1.0

