"""The harness of the bad-input matrices (tests/reliability/test_bad_input_*.py): a case's workspace,
its argument list, and the check of the command contract (README, "The command
contract"): exit 2, exactly one line on stderr starting with "PROG: error:" and holding
the expected fragments (and none of the fragments marked "!"), no traceback, and nothing
written, changed or removed (every file byte for byte)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest


class Work:
    """A case's folder (`tmp`: inputs in `tmp/in`, outputs in `tmp/out`) and its argument list."""

    def __init__(self, tmp: Path, args: list) -> None:
        self.tmp, self.args = tmp, [str(a) for a in args]
        self.inputs, self.out = tmp / "in", tmp / "out"

    def set(self, option: str, value) -> None:
        """Give `option` the value `value` (replacing the one given, or appending it)."""
        if option in self.args:
            self.args[self.args.index(option) + 1] = str(value)
        else:
            self.args += [option, str(value)]

    def argument(self, value) -> None:
        """Give the command's argument (the word after the command name) the value `value`."""
        self.args[1] = str(value)

    def drop(self, *options: str) -> None:
        """Leave options (and their values) out."""
        for option in options:
            while option in self.args:
                position = self.args.index(option)
                del self.args[position:position + 2]

    def add(self, *items) -> None:
        self.args += [str(i) for i in items]

    def file(self, name: str, text: str | bytes) -> Path:
        """An input file holding `text`."""
        path = self.inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return path

    def folder(self, name: str) -> Path:
        """An input folder (with a hidden file, so that it is not empty)."""
        return self.file(f"{name}/.keep", "").parent

    def fill(self, text: str) -> str:
        return text.format(**{k: v for k, v in vars(self).items() if isinstance(v, Path)})


class Accepted:
    """A documented non-error: exit 0, `fragments` on stderr, and `check(w)` holds."""

    def __init__(self, fragments: list[str], check=None) -> None:
        self.fragments, self.check = fragments, check


def snapshot(root: Path) -> dict[str, str | None]:
    """Every file (with a hash of its bytes) and folder below `root`, hidden ones
    included; links and special files by what they are, without reading them."""
    def state(path: Path) -> str | None:
        if path.is_symlink():
            return f"link to {os.readlink(path)}"
        if path.is_dir():
            return None
        if not path.is_file():
            return "special file"
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except PermissionError:  # an unreadable input of a case: its size stands for it
            return f"unreadable, {path.stat().st_size} bytes"

    return {str(p.relative_to(root)): state(p) for p in sorted(root.rglob("*"))}


def check_case(run, w: Work, expected, prog: str) -> None:
    """Run the case and check the contract, or the documented behaviour of an `Accepted` case."""
    before = snapshot(w.tmp)
    result = run(*w.args)
    after = snapshot(w.tmp)
    assert "Traceback" not in result.err + result.out, result
    leftovers = [p for p in set(after) - set(before) if p.endswith(".partial") or Path(p).name.startswith(".")]
    assert not leftovers, leftovers
    if isinstance(expected, Accepted):
        assert result.code == 0, result
        for fragment in expected.fragments:
            assert w.fill(fragment) in result.err, (fragment, result.err)
        if expected.check is not None:
            expected.check(w)
        return
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2, result
    assert len(lines) == 1 and result.err.strip() == lines[0], result
    assert lines[0].startswith(f"{prog}: error:"), result
    for fragment in expected:
        if fragment.startswith("!"):  # what the message must not say (advice that would destroy data)
            assert w.fill(fragment[1:]) not in lines[0], (fragment, lines[0])
        else:
            assert w.fill(fragment) in lines[0], (fragment, lines[0])
    assert after == before, "the command wrote, changed or removed files"


def cut_tail(path: Path, keep: float = 0.5) -> Path:
    """Truncate a file to `keep` of its length (a download or copy cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def file_at(path: Path) -> Path:
    """A plain file where an output folder would be (`out/sub` of `out/sub/acts.h5`)."""
    path.write_text("not a folder\n")
    return path


def unreadable(path: Path) -> Path:
    os.chmod(path, 0)
    return path


def config(w: Work, text: str) -> None:
    """Add --config with a YAML file holding `text`."""
    w.add("--config", w.file("options.yaml", text))


def table(cases):
    """pytest parameters from a table of (id, break, expected[, marks])."""
    return [pytest.param(brk, expected, id=case_id, marks=list(marks)) for case_id, brk, expected, *marks in cases]


def _modes_enforced() -> bool:
    """Whether a file without read permission is unreadable here: not for root (unless
    it runs without CAP_DAC_OVERRIDE, as under `setpriv --bounding-set=-all`)."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_text()
        except PermissionError:
            return True
        return False


NOT_AS_ROOT = pytest.mark.skipif(not _modes_enforced(), reason="root reads files whatever their mode")


# ------------------------------------------------------------------ the class tables' helpers


def command_table(rows):
    """pytest parameters from (case id, command, break, expected[, marks])."""
    return [pytest.param(command, brk, expected, id=f"{command}-{case}", marks=list(marks))
            for case, command, brk, expected, *marks in rows]


def link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def hard_link(path: Path, target: Path) -> Path:
    os.link(target, path)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def the_config_is_the_sidecar(w: Work, sidecar: str) -> None:
    """--config names the file the run would write its resolved options to."""
    (w.out / sidecar).write_text("overwrite: true\n")
    w.add("--config", w.out / sidecar)


def held_lock(output: Path):
    """A second process that holds the run lock of `output`, as a run writing it does."""
    code = textwrap.dedent(f"""
        import time
        from net2brain_fovex.io.locks import holds_outputs, lock_output
        @holds_outputs
        def run():
            lock_output({str(output)!r})
            print("ready", flush=True)
            time.sleep(120)
        run()
    """)
    return _background(code)


def held_open(path: Path):
    """A second process that has the HDF5 file `path` open for writing."""
    code = f"import h5py, time\nfile = h5py.File({str(path)!r}, 'a')\nprint('ready', flush=True)\ntime.sleep(120)\n"
    return _background(code)


@contextmanager
def _background(code: str):
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


class Held:
    """A case run while another process holds a file (`held_lock`, `held_open`)."""

    def __init__(self, holder, path, expected) -> None:
        self.holder, self.path, self.expected = holder, path, expected


def link_loop(path: Path) -> Path:
    """`path` and `path.other`, two links to each other."""
    os.symlink(path.name + ".other", path)
    os.symlink(path.name, str(path) + ".other")
    return path


# model factories of user code that fails: (the factory file, what the message says)
FAILING_FACTORIES = {
    "needs-arguments": ("def build(depth):\n    pass\n", ["nets.py:build' raised TypeError", "missing 1 required", "without arguments"]),
    "raises": ("def build():\n    raise RuntimeError('no GPU driver')\n", ["nets.py:build' raised RuntimeError: no GPU driver"]),
    "module-raises": ("import torch\nsettings['depth']\ndef build():\n    pass\n", ["importing", "raised NameError", "fix the Python file"]),
    "forward-raises": ("import torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n        return x.view(3)\n"
                       "def build():\n    return Net()\n", ["failed on a batch of 1 image(s)", "RuntimeError", "check the model"]),
}
