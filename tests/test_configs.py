"""The example configs in configs/ only use options their command has."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from net2brain_cli import analysis, searchlight
from net2brain_cli import app as cli
from shared.config import load_config

CONFIGS = Path(__file__).parents[1] / "configs"
COMMANDS = {"models": cli.models_command, "layers": cli.layers_command, "extract": cli.extract_command, "demo": cli.demo_command,
            "rdm": analysis.rdm_command, "rsa": analysis.rsa_command, "searchlight": searchlight.searchlight_command}


from fovex_cli import app as fovex_app

COMMANDS.update({"explain": fovex_app.explain_command, "evaluate": fovex_app.evaluate_command,
                 "fovex-demo": fovex_app.demo_command})


@pytest.mark.parametrize("command", list(COMMANDS))
def test_example_config_matches_its_command(command):
    options = set(inspect.signature(COMMANDS[command]).parameters) - {"ctx", "config"}
    config = load_config(CONFIGS / f"{command}.yaml")
    assert config and set(config) <= options, set(config) - options
