"""The distribution: the core's import name, what the wheel installs, and the layering
(the core never imports the command line, never speaks in flags, and the command
line's start-up stays free of torch)."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import net2brain_fovex

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "shared" / "net2brain_fovex"
CLI_PACKAGES = ("cli_common", "net2brain_cli", "fovex_cli")
TOP_LEVEL = {"net2brain_fovex", *CLI_PACKAGES}


def core_sources() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth, as absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def installed_from_this_source(module_file: str) -> bool:
    """The imported core is this checkout's: the source folder itself (an editable
    install) or a copy of it in site-packages (a plain `pip install .`, as CI does)."""
    package = Path(module_file).resolve().parent
    if package == CORE:
        return True
    return "site-packages" in package.parts and all(
        (package / source.relative_to(CORE)).read_bytes() == source.read_bytes() for source in core_sources())


def test_the_core_is_imported_as_net2brain_fovex_from_the_installation():
    assert installed_from_this_source(net2brain_fovex.__file__), net2brain_fovex.__file__
    assert net2brain_fovex.__version__ != "0+unknown"
    assert not (ROOT / "shared" / "__init__.py").exists()  # shared/ is a source root, not a package


def test_importing_from_another_folder_works(tmp_path):
    (tmp_path / "shared").mkdir()  # a folder named shared in the working directory shadows nothing
    done = subprocess.run([sys.executable, "-c", "import net2brain_fovex, sys; print(net2brain_fovex.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert installed_from_this_source(done.stdout.strip()), done.stdout


@pytest.mark.parametrize("path", core_sources(), ids=lambda p: str(p.relative_to(CORE)))
def test_no_core_module_imports_the_command_line(path):
    forbidden = {name for name in imported_modules(path)
                 if name.split(".")[0] in {*CLI_PACKAGES, "typer", "rich", "click", "shared"}}
    assert not forbidden, forbidden


@pytest.mark.parametrize("path", core_sources(), ids=lambda p: str(p.relative_to(CORE)))
def test_no_core_module_speaks_in_flags(path):
    # messages and docs name Python parameters; the command line turns them into flags
    flags = [line for line in path.read_text(encoding="utf-8").splitlines() if re.search(r"(?<![\w-])--[a-z]", line)]
    assert not flags, flags


def test_every_core_module_imports_and_lists_its_public_names():
    for info in pkgutil.walk_packages(net2brain_fovex.__path__, "net2brain_fovex."):
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{info.name} has no __all__"
        missing = [name for name in names if not hasattr(module, name)]
        assert not missing, (info.name, missing)


def test_the_command_line_starts_without_torch():
    code = ("import sys, net2brain_cli.app, fovex_cli.app; "
            "print(sorted(m for m in ('torch', 'h5py', 'nibabel', 'timm', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_wheel_installs_the_four_packages_and_no_shared(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == TOP_LEVEL
    packages = {str(path.parent.relative_to(CORE.parent)) for path in CORE.rglob("__init__.py")}
    assert packages <= {name.rpartition("/")[0] for name in names}, packages - {n.rpartition("/")[0] for n in names}
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib, pkgutil, net2brain_fovex; "
            "print(net2brain_fovex.__file__); "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(net2brain_fovex.__path__, 'net2brain_fovex.')]; "
            "import net2brain_cli.app, fovex_cli.app, cli_common")
    done = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(target)


def test_every_face_name_is_what_it_says_after_all_modules_are_loaded():
    """A subpackage's public name is never hidden by a submodule of the same name (the
    import system sets a package's attribute to its submodule once that is imported)."""
    import types

    modules = [importlib.import_module(info.name)
               for info in pkgutil.walk_packages(net2brain_fovex.__path__, "net2brain_fovex.")]
    faces = [net2brain_fovex, *(m for m in modules if hasattr(m, "_EXPORTS"))]
    for face in faces:
        for name in face.__all__:
            assert not isinstance(getattr(face, name), types.ModuleType), (face.__name__, name)


def test_every_public_name_of_a_face_has_a_numpydoc_docstring():
    import inspect

    missing = []
    for info in pkgutil.iter_modules(net2brain_fovex.__path__, "net2brain_fovex."):
        face = importlib.import_module(info.name)
        for name in getattr(face, "__all__", []) if hasattr(face, "_EXPORTS") else []:
            value = getattr(face, name)
            if not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            doc = inspect.getdoc(value) or ""
            parameters = [p for p in inspect.signature(value).parameters if p not in ("self", "cls")]
            if not doc or (inspect.isfunction(value) and len(parameters) > 1 and "Parameters\n---" not in doc):
                missing.append(f"{info.name}.{name}")
    assert not missing, missing
