"""README.md: the snippets of its Python API section run as they stand, in order."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def api_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):text.index("## Development")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_python_api_snippets_run(tmp_path, monkeypatch, capsys):
    snippets = api_snippets()
    assert len(snippets) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for snippet in snippets:
        exec(compile(snippet, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "acts.h5").exists() and (tmp_path / "sub-01.nii.gz").exists()
    result = namespace["result"]
    assert result.layers == ["layer1", "layer4"] and result.score.argmax() == 1  # the planted layer wins
    assert namespace["explained"].fixations.shape == (4, 3, 2)
    assert "(4, 64, 64)" in capsys.readouterr().out.replace("torch.Size([4, 64, 64])", "(4, 64, 64)")
