"""Files never run code: YAML is read with safe loading, weights with torch's
`weights_only` loader (or safetensors), numpy arrays without pickles.

Each refused file holds a payload whose loading by an unsafe reader creates a marker
file; the test checks that the command exits with 2 (one line on stderr, no traceback),
writes nothing, and that the marker does not exist. A control shows that each payload
does create the marker when loaded unsafely, so the tests are not vacuous. Model
factories (`module:function`, `file.py:function`) are the one place where the toolbox
runs the user's code on purpose, and the documentation says so.
"""
from __future__ import annotations

import pathlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import factory, write_images

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "net2brain_cli", "fovex_cli", "cli_common")


class Touch:
    """Unpickling this creates `marker` (pathlib.Path.touch): a stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def one_line_refusal(result, *fragments: str) -> None:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2, result
    assert len(lines) == 1 and "Traceback" not in result.err, result
    assert re.match(r"^(fovex|net2brain): error: ", lines[0]), result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "loading a file ran the code it carried"


# ------------------------------------------------------------------ YAML


@pytest.mark.parametrize("tool, command", [
    ("fovex", ["explain", "--out", "maps.h5"]),
    ("fovex", ["evaluate", "--out", "metrics.csv"]),
    ("net2brain", ["extract", "--out", "acts.h5"]),
    ("net2brain", ["rsa", "--out", "rsa.csv"]),
])
def test_a_yaml_config_with_a_python_tag_is_refused(request, tmp_path, marker, tool, command):
    config = tmp_path / "evil.yaml"
    config.write_text(f'batch-size: !!python/object/apply:os.system ["touch {marker}"]\n')
    run = request.getfixturevalue(tool)
    command[-1] = str(tmp_path / command[-1])
    result = run(*command, "--config", config)
    one_line_refusal(result, str(config), "safe loading")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.yaml"]


def test_the_yaml_payload_is_live_when_loaded_unsafely(tmp_path):
    """The control: PyYAML's unsafe loader does run the tag (so the test above means something)."""
    import yaml

    marker = tmp_path / "PWNED"
    yaml.unsafe_load(f'x: !!python/object/apply:os.system ["touch {marker}"]')
    assert marker.exists()


# ------------------------------------------------------------------ weights


@pytest.fixture
def pickled_weights(tmp_path, marker) -> Path:
    """A .pth whose 'state dict' holds an object that creates the marker when unpickled."""
    path = tmp_path / "weights.pth"
    torch.save({"features.0.weight": Touch(marker)}, path)
    return path


def test_the_weights_payload_is_live_when_loaded_unsafely(tmp_path, pickled_weights, marker):
    torch.load(pickled_weights, weights_only=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("tool, command", [
    ("net2brain", ["extract", "--stimuli", "{images}", "--out", "{out}/acts.h5"]),
    ("fovex", ["explain", "--images", "{images}", "--out", "{out}/maps.h5", "--method", "gradcam"]),
    ("fovex", ["evaluate", "--images", "{images}", "--maps", "{images}/../maps.h5", "--out", "{out}/metrics.csv"]),
])
def test_pickled_weights_are_refused(request, tmp_path, pickled_weights, tool, command):
    images = write_images(tmp_path / "images", 2, size=36)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "maps.h5").write_bytes(b"")  # evaluate stops at the weights before reading the maps
    args = [a.format(images=images, out=out) for a in command]
    result = request.getfixturevalue(tool)(*args, "--model", factory("tiny_cnn"), "--image-size", 32,
                                           "--weights", pickled_weights)
    one_line_refusal(result, str(pickled_weights), "cannot load weights", "pickled Python objects")
    assert list(out.iterdir()) == []


def test_a_pickle_named_as_a_torchscript_model_is_refused(net2brain, tmp_path, marker):
    """`--model FILE.pt` is read by TorchScript's loader, which does not unpickle Python objects."""
    model = tmp_path / "model.pt"
    torch.save(Touch(marker), model)
    images = write_images(tmp_path / "images", 2, size=36)
    result = net2brain("extract", "--model", model, "--stimuli", images, "--out", tmp_path / "acts.h5")
    one_line_refusal(result, str(model), "not a TorchScript model")
    assert not (tmp_path / "acts.h5").exists()


# ------------------------------------------------------------------ numpy arrays


def object_array(marker: Path) -> np.ndarray:
    return np.array([Touch(marker), 1.0], dtype=object)


def test_the_numpy_payload_is_live_when_loaded_unsafely(tmp_path, marker):
    np.save(tmp_path / "a.npy", object_array(marker), allow_pickle=True)
    np.load(tmp_path / "a.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()


@pytest.fixture
def model_rdms(tmp_path) -> Path:
    from net2brain_fovex.brain.rdm_files import write_rdms

    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 3))
    rdm = np.linalg.norm(points[:, None] - points[None], axis=2)
    return write_rdms(tmp_path / "model_rdms.h5", [f"s{i}.png" for i in range(6)], {"layer1": rdm}, metric="euclidean")


def brain_npz(tmp_path, marker):
    path = tmp_path / "IT.npz"
    np.savez(path, rdms=object_array(marker))
    return path, ["rsa", "--model-rdms", tmp_path / "model_rdms.h5", "--brain-rdms", path, "--out", tmp_path / "out" / "rsa.csv"]


def brain_folder(tmp_path, marker):
    (tmp_path / "brain").mkdir()
    path = tmp_path / "brain" / "IT.npz"
    np.savez(path, rdms=object_array(marker))
    return path, ["rsa", "--model-rdms", tmp_path / "model_rdms.h5", "--brain-rdms", tmp_path / "brain",
                  "--out", tmp_path / "out" / "rsa.csv"]


def responses_npy(tmp_path, marker):
    path = tmp_path / "sub-01.npy"
    np.save(path, object_array(marker), allow_pickle=True)
    return path, ["rdm", "--responses", path, "--roi", "MEG", "--out", tmp_path / "out" / "meg.h5"]


def responses_npz(tmp_path, marker):
    path = tmp_path / "sub-01.npz"
    np.savez(path, data=object_array(marker))
    return path, ["rdm", "--responses", path, "--roi", "MEG", "--out", tmp_path / "out" / "meg.h5"]


def reference_volume(tmp_path) -> Path:
    import nibabel

    path = tmp_path / "reference.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 4), dtype=np.float32), np.eye(4)), path)
    return path


def searchlight_npz(tmp_path, marker):
    path = tmp_path / "searchlight_rdms.npz"
    np.savez(path, rdms=object_array(marker), centres=np.zeros((1, 3), dtype=int))
    return path, ["searchlight", "--searchlight-rdms", path, "--model-rdms", tmp_path / "model_rdms.h5",
                  "--reference", reference_volume(tmp_path), "--out-dir", tmp_path / "out"]


def searchlight_centres(tmp_path, marker):
    rdms = tmp_path / "searchlight_rdms.npz"
    np.savez(rdms, rdms=np.zeros((1, 1, 6, 6)))
    path = tmp_path / "centres.npy"
    np.save(path, object_array(marker), allow_pickle=True)
    return path, ["searchlight", "--searchlight-rdms", rdms, "--centres", path, "--model-rdms", tmp_path / "model_rdms.h5",
                  "--reference", reference_volume(tmp_path), "--out-dir", tmp_path / "out"]


@pytest.mark.parametrize("make", [brain_npz, brain_folder, responses_npy, responses_npz, searchlight_npz, searchlight_centres],
                         ids=lambda f: f.__name__.replace("_", "-"))
def test_numpy_files_holding_pickles_are_refused(net2brain, tmp_path, marker, model_rdms, make):
    path, args = make(tmp_path, marker)
    (tmp_path / "out").mkdir()
    result = net2brain(*args)
    one_line_refusal(result, path.name, "pickle")
    assert list((tmp_path / "out").iterdir()) == []


# ------------------------------------------------------------------ the code base


def python_files():
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def calls(pattern: str):
    """(file, line number, line) of every line matching `pattern` in the packages."""
    found = []
    for path in python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(pattern, line) and not line.lstrip().startswith("#"):
                found.append((path.relative_to(ROOT), number, line.strip()))
    return found


@pytest.mark.parametrize("tool", ["net2brain", "fovex"])
def test_a_report_reads_the_run_folder_without_running_its_files(request, tmp_path, marker, tool):
    """A run folder is often someone else's: its sidecars and arrays are read safely,
    and a file that would run code is listed as unreadable."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "rsa.csv").write_text("roi,model,layer,score,sem,p\nV1,net,fc,0.5,0.1,0.01\n")
    (run / "rsa.config.yaml").write_text(f'plot: !!python/object/apply:os.system ["touch {marker}"]\n')
    np.save(run / "weights.npy", np.array([Touch(marker)], dtype=object), allow_pickle=True)
    result = request.getfixturevalue(tool)("report", run)
    assert result.code == 0, result
    assert "rsa.config.yaml cannot be read" in result.err and "safe loading" in result.err
    assert "weights.npy" in (run / "report.html").read_text()  # listed, never loaded


@pytest.mark.parametrize("layout", ["net2brain", "thingsvision"])
def test_convert_refuses_features_holding_pickles(net2brain, tmp_path, marker, layout):
    source = tmp_path / "features"
    source.mkdir()
    payload = np.array([Touch(marker)], dtype=object)
    if layout == "net2brain":
        np.savez(source / "img_1.png.npz", fc=payload, allow_pickle=True)
    else:
        np.save(source / "features.npy", payload, allow_pickle=True)
        (source / "file_names.txt").write_text("img_1.png\n")
    result = net2brain("convert", source, "--out", tmp_path / "acts.h5")
    one_line_refusal(result, "(a pickle), which loading could run as code")
    assert not (tmp_path / "acts.h5").exists()


def test_the_code_base_loads_nothing_unsafely():
    assert python_files(), "no sources found"
    assert calls(r"yaml\.(load|unsafe_load|full_load|load_all)\(|yaml\.(Unsafe|Full)?Loader\b|Loader\s*=") == []
    assert calls(r"\bpickle\.(loads?|Unpickler)\b|\b(dill|shelve|marshal|joblib|cloudpickle)\b") == []
    assert calls(r"allow_pickle\s*=\s*True|weights_only\s*=\s*False") == []
    assert all("weights_only=True" in line for _, _, line in calls(r"torch\.load\(")), calls(r"torch\.load\(")
    assert all("allow_pickle=False" in line for _, _, line in calls(r"\bnp\.load\(")), calls(r"\bnp\.load\(")
    assert calls(r"(?<![.\w])(eval|exec)\(") == []


# ------------------------------------------------------------------ factories run the user's code


@pytest.mark.parametrize("tool, command", [("net2brain", "extract"), ("fovex", "explain"), ("fovex", "evaluate")])
def test_the_model_help_says_a_factory_runs_your_code(request, tool, command):
    result = request.getfixturevalue(tool)(command, "--help")
    assert result.code == 0
    assert "runs your own code" in " ".join(re.sub(r"[\u2500-\u257f]", " ", result.out).split())


def test_the_readme_says_a_factory_runs_your_code():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    extract = text[text.index("## `net2brain extract`"):text.index("## `net2brain rdm`")]
    assert "runs your own code" in " ".join(extract.split())
