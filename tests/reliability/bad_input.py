"""The harness of the bad-input matrices (tests/reliability/test_bad_input_*.py): a case's workspace,
its argument list, and the check of the command contract (README, "The command
contract"): exit 2, exactly one line on stderr starting with "PROG: error:" and holding
the expected fragments, no traceback, and nothing written or removed."""
from __future__ import annotations

import os
import tempfile
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


def snapshot(root: Path) -> dict[str, int | None]:
    """Every file (with its size) and folder below `root`, hidden ones included."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else None) for p in sorted(root.rglob("*"))}


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
        assert w.fill(fragment) in lines[0], (fragment, lines[0])
    assert after == before, "the command wrote or removed files"


def cut_tail(path: Path, keep: float = 0.5) -> Path:
    """Truncate a file to `keep` of its length (a download or copy cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
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
