"""The centre-bias baseline: the Gaussian against a literal loop, its independence of the
model and the images, its parameter, and `fovex explain --method centre`."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.explain.attributions import read_attributions
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.centre import centre, centre_bias
from net2brain_fovex.explain.registry import METHODS, CentreParameters
from tests.conftest import factory, write_images

CONTEXT = Context(black=torch.zeros(3))


def literal(height, width, sigma):
    values = [[math.exp(-(r - (height - 1) / 2) ** 2 / (2 * (sigma * height) ** 2)
                        - (c - (width - 1) / 2) ** 2 / (2 * (sigma * width) ** 2)) for c in range(width)]
              for r in range(height)]
    low, high = min(map(min, values)), max(map(max, values))
    return np.array([[(v - low) / (high - low) for v in row] for row in values])


@pytest.mark.parametrize(("height", "width", "sigma"), [(9, 9, 0.235), (12, 20, 0.235), (7, 4, 0.5), (16, 16, 0.1)])
def test_the_map_is_the_stretched_gaussian_min_max_normalised(height, width, sigma):
    images = torch.randn(3, 3, height, width)
    maps = centre(None, images, torch.tensor([0, 1, 2]), CONTEXT, parameters=CentreParameters(centre_sigma=sigma)).maps
    assert maps.shape == (3, height, width) and maps.dtype == torch.float32
    for m in maps:
        np.testing.assert_allclose(m.numpy(), literal(height, width, sigma), atol=1e-7, rtol=0)
    raw = centre_bias(height, width, sigma=sigma)
    assert raw.dtype == torch.float64 and raw.max() <= 1 and raw.min() > 0


def test_the_gaussian_is_stretched_to_the_aspect_ratio():
    bias = centre_bias(21, 41, sigma=0.2)  # odd sides: the centre is a pixel
    assert bias[10, 20] == 1
    # one standard deviation from the centre along each axis: exp(-1/2), 4.2 rows and 8.2 columns away
    rows, cols = torch.arange(21, dtype=torch.float64), torch.arange(41, dtype=torch.float64)
    torch.testing.assert_close(bias[:, 20], torch.exp(-0.5 * ((rows - 10) / 4.2) ** 2))
    torch.testing.assert_close(bias[10], torch.exp(-0.5 * ((cols - 20) / 8.2) ** 2))


def test_the_map_depends_on_neither_model_nor_images_nor_seed():
    class Exploding(nn.Module):
        def forward(self, x):
            raise AssertionError("the centre bias must not run the model")

    model = Exploding().train()
    first = centre(model, torch.randn(2, 3, 10, 10), torch.tensor([0, 3]), Context(torch.zeros(3), seed=1)).maps
    second = centre(model, torch.zeros(2, 3, 10, 10), torch.tensor([4, 4]), Context(torch.ones(3), seed=9)).maps
    assert torch.equal(first, second) and torch.equal(first[0], first[1])
    assert model.training
    assert METHODS["centre"].backward is False and METHODS["centre"].layer is False


def test_bad_parameters_and_batches_are_refused():
    with pytest.raises(ConfigError, match=r"invalid centre parameter `centre_sigma`: centre_sigma = 0 is out of range; "
                                          r"expected a finite number > 0"):
        CentreParameters(centre_sigma=0)
    with pytest.raises(ConfigError, match="centre_sigma = inf"):
        centre_bias(4, 4, sigma=math.inf)
    with pytest.raises(InputError, match=r"targets must be class indices \(B,\) = \(2,\)"):
        centre(None, torch.zeros(2, 3, 8, 8), torch.zeros(3, dtype=torch.long), CONTEXT)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_maps():
    images, targets = torch.zeros(2, 3, 12, 14), torch.tensor([0, 1])
    on_gpu = centre(None, images.cuda(), targets.cuda(), CONTEXT).maps
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), centre(None, images, targets, CONTEXT).maps)


# ------------------------------------------------------------------ through the command line

def test_explain_method_centre_through_the_cli(fovex, tmp_path):
    pictures = write_images(tmp_path / "pictures", 3, size=36)
    out = tmp_path / "centre.h5"
    result = fovex("explain", "--model", factory("tiny_cnn"), "--weights", "random", "--images", pictures,
                   "--out", out, "--image-size", 32, "--method", "centre", "--centre-sigma", 0.3)
    assert result.code == 0, result
    content = read_attributions(out)
    assert content["maps"].shape == (3, 32, 32) and "fixations" not in content
    assert content["attrs"]["method"] == "centre" and '"centre_sigma": 0.3' in content["attrs"]["parameters"]
    for m in content["maps"]:
        np.testing.assert_allclose(m, literal(32, 32, 0.3), atol=1e-7, rtol=0)
    assert np.isfinite(content["scores"]).all() and content["targets"].shape == (3,)


def test_centre_sigma_with_another_method_is_refused(fovex, tmp_path):
    pictures = write_images(tmp_path / "pictures", 2, size=36)
    result = fovex("explain", "--model", factory("tiny_cnn"), "--weights", "random", "--images", pictures,
                   "--out", tmp_path / "m.h5", "--image-size", 32, "--method", "gradcam", "--centre-sigma", 0.3)
    assert result.code == 2 and "--centre-sigma applies to --method centre, not gradcam" in result.err
    assert not (tmp_path / "m.h5").exists()
