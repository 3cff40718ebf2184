"""The catalogue of `net2brain models`: every source, task, input kind and weights flag; a
source whose optional library is missing names the pip command; `fovex` refuses models
whose output is not class scores."""
from __future__ import annotations

import importlib.util
import json
from collections import Counter

import pytest

from net2brain_fovex.errors import ConfigError
from net2brain_fovex.models.registry import TASKS
from net2brain_fovex.models.sources import SOURCES, ModelSource, list_models
from tests.conftest import write_images


def test_the_catalogue_spans_every_task_and_source(net2brain):
    result = net2brain("models", "--json")
    assert result.code == 0, result
    listed = json.loads(result.out)
    tasks = Counter(entry["task"] for entry in listed)
    assert len(listed) >= 1700 and set(tasks) == set(TASKS), tasks
    assert {entry["source"] for entry in listed} == set(SOURCES)
    assert {entry["input"] for entry in listed} == {"image", "video"}
    assert all(isinstance(entry["pretrained"], bool) for entry in listed)
    for task in TASKS:  # the summary line on stderr counts every task
        assert f"{task} {tasks[task]}" in result.err


@pytest.mark.parametrize("task", list(TASKS))
def test_task_filter(net2brain, task):
    result = net2brain("models", "--task", task, "--json")
    assert result.code == 0, result
    listed = json.loads(result.out)
    assert listed and all(entry["task"] == task for entry in listed)


def test_filters_combine_and_the_text_has_five_columns(net2brain):
    result = net2brain("models", "--source", "torchvision", "--task", "video")
    lines = [line.split("\t") for line in result.out.splitlines()]
    assert ["torchvision", "r3d_18", "video", "video", "yes"] in lines
    assert all(len(line) == 5 and line[2] == "video" for line in lines)
    assert net2brain("models", "--task", "cooking").code == 2


def test_a_missing_optional_library_names_its_pip_command(net2brain, monkeypatch):
    missing = ModelSource("x", "a source", "hf", library="no_such_library_xyz", extra="hf")
    with pytest.raises(ConfigError, match=r"needs the no_such_library_xyz library.*pip install 'net2brain-fovex\[hf\]'"):
        missing.entries()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "transformers" else real_find_spec(name, *a))
    result = net2brain("models", "--source", "hf")
    assert result.code == 2 and "pip install 'net2brain-fovex[hf]'" in result.err, result
    result = net2brain("layers", "facebook/dinov2-small", "--source", "hf")
    assert result.code == 2 and "pip install 'net2brain-fovex[hf]'" in result.err, result
    with pytest.warns(RuntimeWarning, match=r"sources not installed: hf \(pip install"):
        listed = list_models()
    assert "hf" not in {source for source, _ in listed}


def test_pretrained_tag_joins_the_model_name(net2brain):
    result = net2brain("layers", "RN50:openai", "--pretrained-tag", "yfcc15m")
    assert result.code == 2 and "names a tag already" in result.err


@pytest.mark.parametrize("model", ["taskonomy_normal", "r3d_18"])
def test_explain_refuses_models_without_class_scores(fovex, tmp_path, model):
    images = write_images(tmp_path / "images", 1, size=40)
    out = tmp_path / "maps.h5"
    result = fovex("explain", "--model", model, "--weights", "random", "--images", images, "--out", out,
                   "--method", "gradcam", "--image-size", 64)
    assert result.code == 2, result
    assert "fovex explains image classifiers" in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists()
