"""The example configs in configs/ only use options their command has."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from net2brain_cli import app as cli
from net2brain_cli.cka import cka_command
from net2brain_cli.convert import convert_command
from net2brain_cli.encode import encode_command
from net2brain_cli.rdm import rdm_command
from net2brain_cli.rsa import rsa_command
from net2brain_cli.searchlight import searchlight_command
from net2brain_fovex.io.config import load_config

CONFIGS = Path(__file__).parents[2] / "configs"
COMMANDS = {"models": cli.models_command, "layers": cli.layers_command, "extract": cli.extract_command, "demo": cli.demo_command,
            "rdm": rdm_command, "rsa": rsa_command, "cka": cka_command, "searchlight": searchlight_command,
            "encode": encode_command, "convert": convert_command}


from fovex_cli import app as fovex_app

COMMANDS.update({"explain": fovex_app.explain_command, "evaluate": fovex_app.evaluate_command,
                 "fovex-demo": fovex_app.demo_command, "merge": cli.merge_command, "fovex-merge": fovex_app.merge_command})

from cli_common.info import info_command
from cli_common.report import report_command

COMMANDS["info"] = info_command
COMMANDS["report"] = report_command


@pytest.mark.parametrize("command", list(COMMANDS))
def test_example_config_matches_its_command(command):
    options = set(inspect.signature(COMMANDS[command]).parameters) - {"ctx", "config"}
    config = load_config(CONFIGS / f"{command}.yaml")
    assert config and set(config) <= options, set(config) - options


PIPELINE_STEPS = {"extract": "extract", "rdm": "rdm", "rsa": "rsa", "searchlight": "searchlight",
                  "explain-fovex": "explain", "explain-gradcam": "explain", "evaluate": "evaluate"}


@pytest.mark.parametrize("step", list(PIPELINE_STEPS))
def test_pipeline_configs_match_their_command(step):
    command = COMMANDS[PIPELINE_STEPS[step]]
    options = set(inspect.signature(command).parameters) - {"ctx", "config"}
    config = load_config(CONFIGS / "pipeline" / f"{step}.yaml")
    assert config and set(config) <= options, set(config) - options


def test_every_pipeline_config_is_used():
    assert {p.stem for p in (CONFIGS / "pipeline").glob("*.yaml")} == set(PIPELINE_STEPS)


def test_every_command_has_an_example_config():
    import typer

    from fovex_cli.app import app as fovex_typer
    from net2brain_cli.app import app as net2brain_typer

    names = set(typer.main.get_command(net2brain_typer).commands)
    names |= {f"fovex-{n}" if n in ("demo", "merge") else n for n in typer.main.get_command(fovex_typer).commands}
    assert names == set(COMMANDS) and all((CONFIGS / f"{name}.yaml").exists() for name in names)
