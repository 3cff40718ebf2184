"""One source of truth: every option a command shares with its core entry point has the
core's default; every choice is a registry's names; the example configs agree with both."""
from __future__ import annotations

import inspect
import re
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from cli_common.config_merge import convert
from fovex_cli import app as fovex_app
from net2brain_cli import app as net2brain_app
from net2brain_cli.cka import cka_command
from net2brain_cli.encode import encode_command
from net2brain_cli.rdm import rdm_command
from net2brain_cli.rsa import rsa_command
from net2brain_cli.searchlight import searchlight_command
from net2brain_fovex.brain.cka import cka_to_file
from net2brain_fovex.brain.encoding_files import encode_to_file
from net2brain_fovex.brain.rdm_files import rdms_to_file
from net2brain_fovex.brain.rsa import rsa_to_file
from net2brain_fovex.brain.searchlight_files import searchlight_to_file
from net2brain_fovex.demo.fovex_demo import run_fovex_demo
from net2brain_fovex.demo.net2brain_demo import run_net2brain_demo
from net2brain_fovex.evaluate.evaluation import evaluate_to_file
from net2brain_fovex.explain.attributions import explain_to_file
from net2brain_fovex.explain.registry import METHODS
from net2brain_fovex.extraction.activations import extract_to_file
from net2brain_fovex.io.config import load_config
from net2brain_fovex.models.layers import list_layers

CONFIGS = Path(__file__).parents[2] / "configs"
PAIRS = {  # command -> its core entry point
    "extract": (net2brain_app.extract_command, extract_to_file),
    "layers": (net2brain_app.layers_command, list_layers),
    "rdm": (rdm_command, rdms_to_file),
    "rsa": (rsa_command, rsa_to_file),
    "cka": (cka_command, cka_to_file),
    "searchlight": (searchlight_command, searchlight_to_file),
    "encode": (encode_command, encode_to_file),
    "demo": (net2brain_app.demo_command, run_net2brain_demo),
    "explain": (fovex_app.explain_command, explain_to_file),
    "evaluate": (fovex_app.evaluate_command, evaluate_to_file),
    "fovex-demo": (fovex_app.demo_command, run_fovex_demo),
}
# options whose command-line default differs from the core's on purpose
DIFFERENT = {
    ("layers", "device"): "the listing runs one blank image: the CPU is enough",
    ("rdm", "layers"): "the same selection, spelled as the command line takes it",
    ("rsa", "layers"): "the same selection, spelled as the command line takes it",
    ("searchlight", "layers"): "the same selection, spelled as the command line takes it",
    ("encode", "layers"): "the same selection, spelled as the command line takes it",
    ("cka", "layers"): "the same selection, spelled as the command line takes it",
    ("cka", "against_layers"): "the same selection, spelled as the command line takes it",
    ("cka", "betas"): "an empty list on the command line is None",
    ("cka", "mask"): "an empty list on the command line is None",
    ("cka", "responses"): "an empty list on the command line is None",
    ("rdm", "betas"): "an empty list on the command line is None",
    ("rdm", "mask"): "an empty list on the command line is None",
    ("rdm", "responses"): "an empty list on the command line is None",
    ("searchlight", "betas"): "an empty list on the command line is None",
    ("extract", "reduce"): "none and None both mean no projection",
    ("demo", "out"): "the command line has a folder name to offer",
    ("fovex-demo", "out"): "the command line has a folder name to offer",
}


def defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("command", list(PAIRS))
def test_command_defaults_are_the_core_defaults(command):
    cli, core = PAIRS[command]
    ours, theirs = defaults(cli), defaults(core)
    shared = [name for name in ours if name in theirs and (command, name) not in DIFFERENT]
    assert shared, "the command shares no option with its entry point"
    wrong = {name: (ours[name], theirs[name]) for name in shared if ours[name] != theirs[name]}
    assert not wrong, wrong


@pytest.mark.parametrize("method", list(METHODS))
def test_method_options_are_the_registry_defaults(method):
    ours = defaults(fovex_app.explain_command)
    for field in fields(METHODS[method].parameters):
        assert ours[field.name] == field.default, field.name
    assert set(fovex_app.METHOD_OPTIONS[method]) == {f.name for f in fields(METHODS[method].parameters)}


def choice_options(command) -> dict[str, tuple]:
    """Options typed as a choice (a Literal) and their choices."""
    choices = {}
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        for part in [hint, *typing.get_args(hint)]:
            for inner in [part, *typing.get_args(part)]:
                if typing.get_origin(inner) is typing.Literal:
                    choices[name] = typing.get_args(inner)
    return choices


def test_choices_are_the_registries_names():
    from net2brain_fovex.brain.registry import (
        COMPARISONS,
        CORRECTIONS,
        ENCODING_MODELS,
        ESTIMATORS,
        FITS,
        INNER_CVS,
        PRECISIONS,
        RDM_METRICS,
        SEARCHLIGHT_METRICS,
    )
    from net2brain_fovex.extraction.registry import DTYPES, TOKENS
    from net2brain_fovex.models.sources import AUTO, SOURCES

    expected = {
        (rdm_command, "metric"): RDM_METRICS.names, (rdm_command, "precision"): PRECISIONS.names,
        (rsa_command, "compare"): COMPARISONS.names, (rsa_command, "correction"): CORRECTIONS.names,
        (rsa_command, "fit"): FITS.names, (cka_command, "estimator"): ESTIMATORS.names, (searchlight_command, "metric"): SEARCHLIGHT_METRICS.names,
        (searchlight_command, "compare"): COMPARISONS.names, (searchlight_command, "precision"): PRECISIONS.names,
        (encode_command, "model"): ENCODING_MODELS.names, (encode_command, "inner"): INNER_CVS.names,
        (net2brain_app.extract_command, "dtype"): DTYPES.names, (net2brain_app.extract_command, "tokens"): TOKENS.names,
        (net2brain_app.extract_command, "source"): (AUTO, *SOURCES.names),
        (net2brain_app.models_command, "source"): SOURCES.names,
        (fovex_app.explain_command, "method"): METHODS.names,
    }
    for (command, option), names in expected.items():
        assert choice_options(command)[option] == tuple(names), (command.__name__, option)


COMMANDS = {
    "extract": net2brain_app.extract_command, "rdm": rdm_command, "rsa": rsa_command, "searchlight": searchlight_command,
    "cka": cka_command, "encode": encode_command, "explain": fovex_app.explain_command, "evaluate": fovex_app.evaluate_command,
}


@pytest.mark.parametrize("config", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_example_configs_agree_with_the_commands_and_registries(config):
    name = config.stem if config.parent == CONFIGS else re.sub(r"-(fovex|gradcam)$", "", config.stem)
    command = COMMANDS.get(name)
    if command is None:
        pytest.skip(f"{config.name}: a command without choices")
    hints = typing.get_type_hints(command, include_extras=True)
    choices = choice_options(command)
    comments = {}
    for line in config.read_text().splitlines():
        key, _, rest = line.partition(":")
        if "#" in rest and not line.startswith("#"):
            comments[key.strip().replace("-", "_")] = rest.split("#", 1)[1]
    for key, value in load_config(config).items():
        convert(hints[key], value, f"{config}: {key}")  # a valid value of the option
        if key in choices and key in comments:  # "value  # the other choices" lists every choice
            named = {word for word in re.findall(r"[\w+:.-]+", comments[key]) if word in choices[key]}
            assert named | {value} == set(choices[key]), (key, comments[key])
    if name == "explain" and load_config(config).get("method", "fovex") == "fovex":
        # the FovEx examples show the reference's defaults
        for field in fields(METHODS["fovex"].parameters):
            given = load_config(config).get(field.name)
            assert given is None or given == field.default, field.name
