"""The HTML page of a run folder (`report_to_file`): one self-contained file, every
image embedded as a data URI, the style inline and no script, so that it opens from a
laptop after `scp`, offline, in any browser.

The page has a navigation bar over its sections (only those with content): the
overview, what was run (each output's provenance and options), the RSA, searchlight,
encoding and CKA tables with their figures, the explanation overlays of each method
side by side and the metric table (best mean of each metric in bold), the other figures,
the stimulus folders as thumbnails, the other tables and every file with a link
(relative to the page, so the links work wherever the folder and the page are copied
together).
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..extraction.stimuli import natural_key
from ..io.atomic import atomic_output
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from . import REPORT_NAME
from .contents import RunContents, Table, scan_run

__all__ = ["report_to_file", "render", "MAX_ROWS", "SECTIONS"]

MAX_ROWS = 200  # rows of a table shown; the rest is in the linked file
THUMBNAIL = 96  # pixels of a stimulus thumbnail's longer side
GENERATOR = "net2brain-fovex report"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
         ".gif": "image/gif"}
# the sections of the tables of each TableKind.section (its "tables" are the other tables)
SECTIONS = {"rsa": "RSA", "searchlight": "Searchlight", "encoding": "Encoding", "cka": "CKA",
             "evaluation": "Explanation metrics"}


@holds_outputs
def report_to_file(folder: str | Path, out: str | Path | None = None, *, title: str | None = None,
                   max_images: int = 100, overwrite: bool = False) -> tuple[Path, RunContents]:
    """Write the HTML report of the run folder `folder` (module docstring).

    Parameters
    ----------
    folder : path
        A run's output folder or a pipeline's (sub-folders included).
    out : path, optional
        The HTML file (default `folder/report.html`); it is left out of its own report.
    title : str, optional
        The page title (default "report of FOLDER").
    max_images : int, default 100
        The most overlays per method and thumbnails per stimulus folder shown; the
        page says how many more the folder holds.
    overwrite : bool
        Replace an existing report.

    Returns
    -------
    (Path, RunContents)
        The page and what it shows.

    Raises
    ------
    InputError
        `folder` is not a folder, or holds none of our outputs.
    ConfigError
        `max_images` out of its range (`net2brain_fovex.checks.RANGES`).
    OutputError
        The report exists without `overwrite`, or cannot be written.
    """
    from ..checks import check_range
    from ..errors import InputError

    check_range("max_images", max_images)
    folder = Path(folder)
    out = Path(out) if out is not None else folder / REPORT_NAME
    contents = scan_run(folder, skip=out)
    if not contents.reportable():
        raise InputError(f"{folder} holds nothing to report (no tables, figures, maps, HDF5 files or config "
                         "sidecars of our commands); give the output folder of a run")
    # the folder is not an input: the report is meant to go inside it
    check_outputs([Output("out", out, "html")], overwrite=overwrite)
    contents.warn()
    page = render(contents, out, title or f"report of {contents.folder.name}", max_images)
    with atomic_output(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out, contents


def render(contents: RunContents, out: Path, title: str, max_images: int) -> str:
    """The page of `contents` as the HTML text of a file at `out`."""
    base = Path(os.path.abspath(out)).parent
    sections = [("overview", "Overview", _overview(contents, base))]
    if contents.configs or contents.data:
        sections.append(("provenance", "What was run", _provenance(contents, base)))
    for section, heading in SECTIONS.items():
        tables = [t for t in contents.tables if t.kind.section == section]
        if tables:
            sections.append((section, heading, "".join(_table_part(t, base) for t in tables)))
    if contents.overlays:
        sections.append(("explanations", "Explanations", _overlays(contents, base, max_images)))
    figures = contents.figures + [p for ps in contents.data_figures.values() for p in ps]
    if figures:
        sections.append(("figures", "Figures", "".join(_figure(p, base) for p in figures)))
    if contents.galleries:
        sections.append(("stimuli", "Stimuli", _galleries(contents, base, max_images)))
    if contents.maps:
        sections.append(("maps", "Brain maps", _maps(contents, base, max_images)))
    others = [t for t in contents.tables if t.kind.section == "tables"]
    if others:
        sections.append(("tables", "Other tables", "".join(_table_part(t, base, collapsed=True) for t in others)))
    sections.append(("files", "Files", _file_list(contents, base)))
    nav = "".join(f'<a href="#{key}">{html.escape(heading)}</a>' for key, heading, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{html.escape(heading)}</h2>{text}</section>'
                   for key, heading, text in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="{GENERATOR}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f'<nav><span class="brand">{html.escape(title)}</span>{nav}</nav><main>{body}</main></body></html>\n')


# ------------------------------------------------------------------ sections


def _overview(contents: RunContents, base: Path) -> str:
    from .. import __version__

    counts = [(len(contents.tables), "tables"), (len(contents.figures) + sum(map(len, contents.data_figures.values()))
              + sum(len(t.figures) for t in contents.tables), "figures"),
              (sum(len(i) for m in contents.overlays.values() for i in m.values()), "overlays"),
              (len(contents.maps), "NIfTI maps"), (len(contents.data), "HDF5 files"),
              (len(contents.configs), "config sidecars")]
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = (f"<p>Folder <code>{html.escape(str(contents.folder))}</code>: "
            + ", ".join(f"{n} {what}" for n, what in counts if n) + ".</p>"
            f"<p>Written {made} by net2brain-fovex {html.escape(__version__)}.</p>")
    if contents.partial:
        text += _warning("unfinished outputs (an interrupted run; resume it or run it again): "
                         + ", ".join(_link(p, base) for p in contents.partial))
    if contents.unreadable:
        text += _warning("unreadable files: " + "; ".join(f"{_link(p, base)} ({html.escape(why)})"
                                                          for p, why in contents.unreadable))
    return text


def _provenance(contents: RunContents, base: Path) -> str:
    """A row per recorded output: the command, its command line, when, which version;
    then each sidecar's options."""
    rows = []
    for description in contents.configs + contents.data:
        provenance = description.get("provenance") or {}
        cells = [str(description.get(key) or provenance.get(key) or "")
                 for key in ("kind", "command", "command_line", "created", "package_version")]
        cells = [html.escape(cell) for cell in cells]
        cells[2] = f"<code>{cells[2]}</code>"
        rows.append([_link(Path(description["file"]), base), *cells])
    text = _html_table(["file", "kind", "command", "command line", "created", "version"], rows)
    for description in contents.configs:
        import yaml

        options = yaml.safe_dump(description.get("options") or {}, sort_keys=False, allow_unicode=True)
        environment = {k: v for k, v in (description.get("provenance") or {}).items()
                       if k not in ("command", "command_line", "created")}
        text += (f"<details><summary>options of {html.escape(_relative(Path(description['file']), base))}"
                 f"</summary><pre>{html.escape(options)}</pre>"
                 f"<pre>{html.escape(yaml.safe_dump(environment, sort_keys=False, allow_unicode=True))}</pre>"
                 "</details>")
    return text


def _table_part(table: Table, base: Path, *, collapsed: bool = False) -> str:
    heading = f"<h3>{html.escape(table.kind.title)}: {_link(table.path, base)}</h3>"
    if table.kind.name == "metrics":
        body = _metric_table(table)
    else:
        body = _rows_table(table)
    if collapsed or table.kind.name == "metric-rows":
        body = f"<details><summary>{len(table.rows)} rows</summary>{body}</details>"
    return heading + body + "".join(_figure(p, base) for p in table.figures)


def _rows_table(table: Table) -> str:
    shown = table.rows[:MAX_ROWS]
    rows = [[html.escape(_cell(row.get(c, ""))) for c in table.columns] for row in shown]
    note = (f'<p class="note">the first {MAX_ROWS} of {len(table.rows)} rows; the rest are in the file</p>'
            if len(table.rows) > MAX_ROWS else "")
    return _html_table(table.columns, rows) + note


def _metric_table(table: Table) -> str:
    """Metrics as rows, methods as columns, mean +- SEM; the best mean of each metric in
    bold (by the metric's direction of better)."""
    from ..evaluate.evaluation import best_means

    methods = list(dict.fromkeys(row["method"] for row in table.rows))
    metrics = list(dict.fromkeys(row["metric"] for row in table.rows))
    cells = {(row["method"], row["metric"]): row for row in table.rows}
    best = best_means([{**row, "mean": _number(row["mean"])} for row in table.rows])
    rows = []
    for metric in metrics:
        line = [html.escape(metric), html.escape(cells[methods[0], metric]["better"]
                                                 if (methods[0], metric) in cells else "")]
        for method in methods:
            row = cells.get((method, metric))
            if row is None:
                line.append("")
                continue
            text = html.escape(f"{_cell(row['mean'])} ± {_cell(row['sem'])}")
            # ties: every method of the best mean is in bold
            top = metric in best and _number(row["mean"]) == _number(cells[best[metric], metric]["mean"])
            line.append(f"<b>{text}</b>" if len(methods) > 1 and top else text)
        rows.append(line)
    return _html_table(["metric", "better", *methods], rows)


def _overlays(contents: RunContents, base: Path, max_images: int) -> str:
    """For each overlays folder, a grid: a row per image, a column per method."""
    text = ""
    for folder, methods in contents.overlays.items():
        names = sorted({name for images in methods.values() for name in images}, key=natural_key)
        shown = names[:max_images]
        header = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
        rows = ""
        for name in shown:
            cells = "".join(f"<td>{_image(methods[m][name], base, alt=f'{m}: {name}')}</td>" if name in methods[m]
                            else "<td></td>" for m in methods)
            rows += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
        text += (f"<h3>Overlays: {_link(folder, base)}</h3>"
                 f'<table class="grid"><tr><th>image</th>{header}</tr>{rows}</table>')
        if len(names) > len(shown):
            text += f'<p class="note">the first {len(shown)} of {len(names)} images; the rest are in the folder</p>'
    return text


def _galleries(contents: RunContents, base: Path, max_images: int) -> str:
    text = ""
    for folder, images in contents.galleries.items():
        shown = images[:max_images]
        thumbs = "".join(f'<figure class="thumb">{_image(p, base, size=THUMBNAIL)}'
                         f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in shown)
        more = (f'<p class="note">the first {len(shown)} of {len(images)} images; the rest are in the folder</p>'
                if len(images) > len(shown) else "")
        text += f"<h3>{_link(folder, base)} ({len(images)} images)</h3><div>{thumbs}</div>{more}"
    return text


def _maps(contents: RunContents, base: Path, max_images: int) -> str:
    """Each folder of NIfTI maps: a slice montage of each group map (`group_*`, as
    searchlight and encode name them; of each map in a folder without group maps) that
    has no picture beside it, up to `max_images` per folder; links to every map."""
    pictured = {(p.parent, p.stem) for p in _all_images(contents)}
    folders: dict[Path, list[Path]] = {}
    for path in contents.maps:
        folders.setdefault(path.parent, []).append(path)
    text = ""
    for folder, maps in folders.items():
        groups = [p for p in maps if p.name.startswith("group_")] or maps
        drawn = [p for p in groups if (folder, _map_name(p)) not in pictured][:max_images]
        montages = "".join(_montage(p, base) for p in drawn)
        text += (f"<h3>{_link(folder, base)}</h3>{montages}<p>"
                 + ", ".join(_link(p, base, p.name) for p in maps) + "</p>")
    return text


def _montage(path: Path, base: Path) -> str:
    """The slice montage of a 3D map as a figure; nothing for a 4D volume (stimulus
    responses, not a map), a note for one that cannot be read."""
    import nibabel as nib

    from ..figures.montage import slice_montage

    try:
        image = nib.load(path)
        if len(image.shape) != 3:
            return ""
        data = np.asarray(image.dataobj, dtype=float)
    except Exception as error:  # nibabel raises many kinds for a damaged file
        return f'<p class="warning">{_link(path, base)}: cannot be read ({html.escape(str(error))})</p>'
    relative = _relative(path, base)
    return f"<figure>{_embedded(slice_montage(data, title=relative), 'image/png', relative)}</figure>"


def _map_name(path: Path) -> str:
    """`group_fc_mean` of group_fc_mean.nii.gz, the stem its picture has."""
    return path.name.removesuffix(".gz").removesuffix(".nii")


def _all_images(contents: RunContents) -> list[Path]:
    images = contents.figures + [p for t in contents.tables for p in t.figures]
    images += [p for ps in contents.data_figures.values() for p in ps]
    return images


def _file_list(contents: RunContents, base: Path) -> str:
    rows = [[_link(p, base), _size(p.stat().st_size)] for p in contents.files()]
    return _html_table(["file", "size"], rows)


# ------------------------------------------------------------------ pieces


def _figure(path: Path, base: Path) -> str:
    return f"<figure>{_image(path, base)}<figcaption>{_link(path, base)}</figcaption></figure>"


def _image(path: Path, base: Path, *, alt: str | None = None, size: int | None = None) -> str:
    """An <img> with the image file embedded (scaled down to `size` pixels, as a PNG,
    when given); its title is the file's path relative to the page."""
    data = path.read_bytes()
    mime = _MIME[path.suffix.lower()]
    if size is not None and mime != "image/svg+xml":
        data, mime = _thumbnail(data, size), "image/png"
    return _embedded(data, mime, _relative(path, base), alt)


def _embedded(data: bytes, mime: str, title: str, alt: str | None = None) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<img src="data:{mime};base64,{encoded}" alt="{html.escape(alt or title, quote=True)}" '
            f'title="{html.escape(title, quote=True)}">')


def _thumbnail(data: bytes, size: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _link(path: Path, base: Path, text: str | None = None) -> str:
    relative = _relative(path, base)
    return f'<a href="{quote(relative)}">{html.escape(text or relative)}</a>'


def _relative(path: Path, base: Path) -> str:
    """`path` relative to the page's folder, with forward slashes (a link)."""
    return Path(os.path.relpath(os.path.abspath(path), base)).as_posix()


def _html_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of already escaped cells."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _cell(text: str) -> str:
    """A CSV cell as shown: numbers with 4 significant digits, integers and text as written."""
    if text.lstrip("-").isdigit():
        return text
    value = _number(text)
    return text if math.isnan(value) and text.lower() != "nan" else f"{value:.4g}"


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    exponent = min(int(math.log10(count) // 3), 3)
    return f"{count / 1000 ** exponent:.1f} {('kB', 'MB', 'GB')[exponent - 1]}"


def _warning(text: str) -> str:
    return f'<p class="warning">{text}</p>'


_STYLE = """
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa}
nav{position:sticky;top:0;z-index:1;display:flex;flex-wrap:wrap;gap:.2em 1.1em;align-items:baseline;
padding:.6em 1.2em;background:#23395b;color:#fff;box-shadow:0 1px 4px rgba(0,0,0,.25)}
nav a{color:#dce6f5;text-decoration:none}nav a:hover{color:#fff;text-decoration:underline}
nav .brand{font-weight:600;margin-right:1em}
main{padding:0 1.4em 3em;max-width:1400px}
section{scroll-margin-top:3.2em;border-bottom:1px solid #ddd;padding-bottom:1em}
h2{margin:1.2em 0 .4em}h3{font-size:1.05em;margin:1em 0 .4em}
table{border-collapse:collapse;margin:.4em 0;background:#fff;font-size:13px}
th,td{border:1px solid #d8d8d8;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eef1f5}td{font-variant-numeric:tabular-nums}
table.grid td,table.grid th{text-align:center}table.grid img{max-width:200px}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:min(100%,900px);border:1px solid #ddd;background:#fff}
figure.thumb{margin:.2em;width:110px}figure.thumb figcaption{font-size:10px;word-break:break-all}
figcaption{font-size:12px;color:#555}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
pre{background:#fff;border:1px solid #ddd;padding:.5em;overflow-x:auto}
.note{color:#555;font-style:italic}.warning{background:#fff4e5;border-left:4px solid #f0a030;padding:.4em .7em}
"""
