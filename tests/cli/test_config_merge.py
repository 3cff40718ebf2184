"""Config files: safe loading, validation, merging under command-line flags, the record."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import h5py
import pytest
import yaml

from cli_common.config_merge import convert
from net2brain_fovex.errors import ConfigError
from net2brain_fovex.io.config import config_path_for, load_config, normalise_key
from tests.conftest import factory


def test_keys_are_normalised(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch-size: 4\n--image_size: 32\n")
    assert load_config(path) == {"batch_size": 4, "image_size": 32}
    assert normalise_key("--per-frame") == "per_frame"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch-size: [1, 2\n", r"not valid YAML at line \d+"),
        ("- a\n- b\n", "must be a mapping"),
        ("batch-size: 1\nbatch_size: 2\n", r"option 'batch_size' \(line 2\) is given twice, also as 'batch-size' "
                                          r"\(line 1\); keep one"),
        ("seed: 1\nframes: 2\nseed: 3\n", r"key 'seed' is given twice, on lines 1 and 3; keep one"),
        ("mean: {r: 1, r: 2}\n", r"key 'r' is given twice, on lines 1 and 1"),
        ("a:\n  b: 1\n  b: 2\n", r"key 'b' is given twice, on lines 2 and 3"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_files_are_refused(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_byte_order_mark_and_yaml_merge_keys_are_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("\ufeffbatch-size: 4\n".encode())
    assert load_config(path) == {"batch_size": 4}
    path.write_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")  # overriding a merged key is YAML's design
    assert load_config(path)["use"] == {"x": 3, "y": 2}


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (int, 3, 3), (int, "12", 12), (float, 2, 2.0), (bool, True, True), (str, 7, "7"),
        (str, ["layer1", "layer2"], "layer1,layer2"), (Path, "a/b.h5", Path("a/b.h5")),
        (Literal["a", "b"], "b", "b"), (int | None, None, None), (tuple[Path, ...], ["x", "y"], (Path("x"), Path("y"))),
    ],
)
def test_convert_accepts(annotation, value, expected):
    assert convert(annotation, value, "here") == expected


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        (int, 3.5, "whole number"), (int, True, "whole number"), (int, "x", "whole number"),
        (bool, "yes", "true or false"), (float, "fast", "a number"), (str, {"a": 1}, "text"),
        (Literal["a", "b"], "c", "one of a, b"), (str, [[1]], "got a list"),
    ],
)
def test_convert_refuses(annotation, value, message):
    with pytest.raises(ConfigError, match=message):
        convert(annotation, value, "here")


def test_unknown_key_names_key_and_file(net2brain, tmp_path, images):
    config = tmp_path / "run.yaml"
    config.write_text("batchsize: 4\n")
    result = net2brain("extract", "--config", config, "--model", factory("tiny_cnn"), "--stimuli", images, "--out", tmp_path / "a.h5")
    assert result.code == 2, result
    assert f"config file {config}: unknown option 'batchsize'; closest: batch-size" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "a.h5").exists()


def test_wrong_type_names_key_and_file(net2brain, tmp_path, images):
    config = tmp_path / "run.yaml"
    config.write_text("batch-size: many\n")
    result = net2brain("extract", "--config", config, "--model", factory("tiny_cnn"), "--stimuli", images, "--out", tmp_path / "a.h5")
    assert result.code == 2, result
    assert f"config file {config}: option 'batch-size' expects a whole number, got 'many'" in result.err


def test_config_supplies_options_and_flags_win(net2brain, tmp_path, images):
    out = tmp_path / "acts.h5"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": factory("tiny_cnn"), "weights": "random", "stimuli": str(images), "out": str(out),
        "layers": ["features.1", "head"], "batch-size": 2, "dtype": "float16", "image-size": 16,
    }))
    result = net2brain("extract", "--config", config, "--dtype", "float32")
    assert result.code == 0, result
    with h5py.File(out) as file:
        assert list(file["layers"]) == ["features.1", "head"]
        assert file["layers/head"].dtype == "float32"  # the flag won over the file
    record = yaml.safe_load(config_path_for(out).read_text())
    assert record["dtype"] == "float32" and record["batch-size"] == 2 and record["layers"] == "features.1,head"
    assert record["image-size"] == 16 and "config" not in record


def test_resolved_config_repeats_the_run(net2brain, tmp_path, images):
    first = tmp_path / "first.h5"
    assert net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", images,
                     "--out", first, "--image-size", 16).code == 0
    record = config_path_for(first)
    second = tmp_path / "second.h5"
    result = net2brain("extract", "--config", record, "--out", second)
    assert result.code == 0, result
    with h5py.File(first) as a, h5py.File(second) as b:
        for name in a["layers"]:
            assert (a["layers"][name][()] == b["layers"][name][()]).all()


def test_missing_required_option(net2brain, tmp_path, images):
    result = net2brain("extract", "--stimuli", images, "--out", tmp_path / "a.h5")
    assert result.code == 2
    assert "missing option --model" in result.err
