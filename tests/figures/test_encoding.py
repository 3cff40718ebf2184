"""The variance partitioning figure of `net2brain encode --partition --plot`: a Venn diagram
per ROI, drawn from the right summary rows, written atomically as PNG, PDF or SVG."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from net2brain_fovex.figures import encoding
from net2brain_fovex.figures.encoding import partition_figure, r2_text
from tests.figures.test_figures import assert_png


def partition_rows(spaces, rois, subjects=("sub-01",), times=("",), value=None):
    """Summary rows (`PARTITION_COLUMNS`) of every (roi, subject, time, measure, spaces),
    each with its own value: `value(roi, subject, time, measure, spaces)` or a distinct one."""
    subsets = ["+".join(c) for size in range(1, len(spaces) + 1) for c in itertools.combinations(spaces, size)]
    measures = ([("r2", s) for s in subsets] + [("unique", s) for s in spaces]
                + [("shared", s) for s in subsets if "+" in s])
    rows, counter = [], itertools.count(1)
    for roi, subject, time, (measure, which) in itertools.product(rois, subjects, times, measures):
        mean = value(roi, subject, time, measure, which) if value else next(counter) / 1000
        rows.append({"roi": roi, "subject": subject, "time": time, "measure": measure, "spaces": which,
                     "mean_r2": mean, "median_r2": mean, "n_targets": 10})
    return rows


@pytest.fixture
def drawn(monkeypatch):
    """The figures `partition_figure` draws, kept for a look after they are written."""
    figures = []
    save = encoding.save_figure

    def keep(fig, path, dpi):
        figures.append(fig)
        return save(fig, path, dpi)

    monkeypatch.setattr(encoding, "save_figure", keep)
    return figures


def panels(fig):
    """The Venn panels (every axes but the colour bar's) by their ROI."""
    return {ax.get_title().split("\n")[0]: ax for ax in fig.axes if ax.patches}


def region_texts(ax):
    """{"unique a" / "shared a+b": its annotation} of one panel."""
    return {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid().split(" ")[0] in ("unique", "shared")}


def expected_texts(rows, roi, subject, time=""):
    return {f"{r['measure']} {r['spaces']}": r2_text(float(r["mean_r2"])) for r in rows
            if r["roi"] == roi and r["subject"] == subject and r["time"] == time and r["measure"] != "r2"}


@pytest.mark.parametrize("spaces", [["a", "b"], ["conv", "fc", "other.layer4.0.conv1"]])
def test_partition_figure_draws_a_venn_diagram_per_roi_from_the_group(tmp_path, drawn, spaces):
    rows = partition_rows(spaces, ["V1", "V4", "IT"], subjects=("sub-01", "sub-02", "group"))
    path = partition_figure(rows, tmp_path / "partition.png")
    assert path == tmp_path / "partition.png"
    assert_png(path, tmp_path)
    (fig,) = drawn
    by_roi = panels(fig)
    assert list(by_roi) == ["V1", "V4", "IT"] and len(fig.axes) == 3 + 1  # a panel per ROI and the colour bar
    regions = 2 ** len(spaces) - 1
    for roi, ax in by_roi.items():
        texts = region_texts(ax)
        assert len(texts) == regions and texts == expected_texts(rows, roi, "group")
        assert len(ax.patches) == len(spaces)  # a circle per space
        assert sorted(t.get_text() for t in ax.texts if t.get_gid().startswith("space ")) == sorted(
            encoding._wrapped(name, 16) for name in spaces)
        full = next(r["mean_r2"] for r in rows if (r["roi"], r["subject"], r["measure"], r["spaces"])
                    == (roi, "group", "r2", "+".join(spaces)))
        assert ax.get_title() == f"{roi}\n$R^2$ of all: {r2_text(full)}"
    assert "group of 2 subjects" in fig.axes[-1].get_ylabel()


def test_each_value_lies_in_its_region_and_is_coloured_by_it(tmp_path, drawn):
    """An annotation lies inside exactly the circles of its spaces; the region's colour is the
    value's on one scale centred at 0 (negative shared variance in blue, positive in red)."""
    def value(roi, subject, time, measure, which):
        return {"a+b": -0.03, "a+b+c": -0.01, "b+c": 0.0}.get(which, 0.05) if measure == "shared" else 0.02

    rows = partition_rows(["a", "b", "c"], ["V1"], value=value)
    partition_figure(rows, tmp_path / "partition.png")
    (ax,) = panels(drawn[0]).values()
    circles = dict(zip(["a", "b", "c"], ax.patches, strict=True))
    image = ax.images[0]
    left, right, bottom, top = image.get_extent()
    pixels = image.get_array()
    for text in ax.texts:
        kind, which = text.get_gid().split(" ")
        if kind not in ("unique", "shared"):
            continue
        x, y = text.get_position()
        inside = {name for name, c in circles.items() if np.hypot(x - c.center[0], y - c.center[1]) < c.radius}
        assert inside == set(which.split("+"))
        row, column = (int((y - bottom) / (top - bottom) * (pixels.shape[0] - 1)),
                       int((x - left) / (right - left) * (pixels.shape[1] - 1)))
        red, _, blue, alpha = pixels[row, column]
        assert alpha == 1.0
        shown = float(text.get_text())
        assert red > blue if shown > 0 else blue > red if shown < 0 else abs(red - blue) < 0.05
    texts = region_texts(ax)
    assert texts["shared a+b"] == "-0.03" and texts["shared a+b+c"] == "-0.01" and texts["shared b+c"] == "0"
    assert texts["unique a"] == "0.02" and texts["shared a+c"] == "0.05"


def test_the_colour_bar_is_centred_at_zero_over_every_roi(tmp_path, drawn):
    def value(roi, subject, time, measure, which):
        return {"V1": -0.08, "IT": 0.02}[roi] if measure == "shared" else 0.01

    partition_figure(partition_rows(["a", "b"], ["V1", "IT"], value=value), tmp_path / "partition.png")
    limits = drawn[0].axes[-1].get_ylim()
    assert limits == pytest.approx((-0.08, 0.08))


def test_time_resolved_rows_draw_the_mean_over_time_and_a_lone_subject(tmp_path, drawn):
    """CSV rows (strings): the `mean` time rows of the subject, not a time point's."""
    def value(roi, subject, time, measure, which):
        return str(-0.5 if time != "mean" else 0.125 if measure == "unique" else -0.0042)

    rows = partition_rows(["a", "b"], ["V1", "V2"], subjects=("sub-07",), times=("0", "1", "mean"), value=value)
    partition_figure(rows, tmp_path / "partition.png")
    by_roi = panels(drawn[0])
    assert len(by_roi) == 2
    for ax in by_roi.values():
        assert region_texts(ax) == {"unique a": "0.125", "unique b": "0.125", "shared a+b": "-0.0042"}
    assert drawn[0].axes[-1].get_ylabel().endswith("(sub-07)")


def test_a_missing_value_is_shown_as_missing(tmp_path, drawn):
    rows = [r for r in partition_rows(["a", "b", "c"], ["V1"]) if r["spaces"] != "b+c"]
    rows[-1]["mean_r2"] = float("nan")
    partition_figure(rows, tmp_path / "partition.png")
    texts = region_texts(panels(drawn[0])["V1"])
    assert texts["shared b+c"] == "n/a" and texts[f"shared {rows[-1]['spaces']}"] == "n/a"


@pytest.mark.parametrize("suffix, start", [(".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_partition_figure_writes_the_format_of_its_suffix(tmp_path, suffix, start):
    path = partition_figure(partition_rows(["a", "b"], ["V1"]), tmp_path / f"partition{suffix}")
    assert path.read_bytes().startswith(start)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_partition_figure_rejects_what_has_no_venn_diagram(tmp_path):
    with pytest.raises(ValueError, match="two or three feature spaces, got 4 \\(a, b, c, d\\)"):
        partition_figure(partition_rows(["a", "b", "c", "d"], ["V1"]), tmp_path / "partition.png")
    with pytest.raises(ValueError, match="no summary rows of a variance partitioning"):
        partition_figure([], tmp_path / "partition.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value, text", [(0.0123456, "0.0123"), (-0.0042, "-0.0042"), (0.0, "0"), (-1e-5, "-1e-05"),
                                         (float("nan"), "n/a")])
def test_r2_text_keeps_the_sign(value, text):
    assert r2_text(value) == text


@pytest.mark.parametrize("name, lines", [("conv", "conv"), ("other_model.layer4.0.downsample.1",
                                                              "other_model.\nlayer4.0.\ndownsample.1"),
                                         ("a" * 20, "a" * 16 + "\n" + "aaaa")])
def test_long_space_names_are_broken_after_separators(name, lines):
    assert encoding._wrapped(name, 16) == lines
