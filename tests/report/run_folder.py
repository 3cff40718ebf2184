"""A small run folder holding one output of each part of a report, written by the
project's own writers where they are cheap to call, and a parser of the report page."""
from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from net2brain_fovex.brain.rdm_files import write_rdms
from net2brain_fovex.io.config import write_resolved_config
from net2brain_fovex.io.tables import write_csv

RNG = np.random.default_rng(5)
IDS = [f"img_{i}.png" for i in range(1, 9)]


def png(path: Path, size=(20, 16), colour=(200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def run_folder(root: Path) -> Path:
    """rsa.csv + rsa.png, a searchlight summary naming its picture, group and subject
    maps, overlays of two methods (one image missing for one), an evaluation summary
    with a tie, a stimulus folder, an RDM file with its sidecar, another CSV, an
    unfinished output, a damaged CSV and a hidden lock file."""
    root.mkdir(parents=True, exist_ok=True)
    write_csv(root / "rsa.csv", [{"roi": r, "model": "net", "layer": l, "score": s, "sem": 0.01, "p": 0.001,
                                  "n_subjects": 4} for r, l, s in (("V1", "conv1", 0.4), ("IT", "fc", 0.61234567))],
              ["roi", "model", "layer", "score", "sem", "p", "n_subjects"])
    png(root / "rsa.png")
    sl = root / "searchlight"
    write_csv(sl / "summary.csv", [{"map": "group_fc_mean.nii.gz", "subject": "group", "layer": "fc",
                                    "statistic": "mean", "peak_value": 0.5, "plot": "group_fc_mean.png"}],
              ["map", "subject", "layer", "statistic", "peak_value", "plot"])
    png(sl / "group_fc_mean.png")
    volume = np.zeros((6, 6, 5), dtype=np.float32)
    volume[2:4, 2:4, 1:3] = 0.5
    for name in ("group_fc_mean", "group_fc_t", "sub-01_fc"):
        nib.save(nib.Nifti1Image(volume, np.diag([2.0, 2.0, 2.0, 1.0])), sl / f"{name}.nii.gz")
    for method, names in (("fovex", ("img_1", "img_2")), ("gradcam", ("img_1",))):
        for name in names:
            png(root / "overlays" / method / f"{name}.png", colour=(40, 200, 40))
    write_csv(root / "metrics.summary.csv",
              [{"method": m, "metric": k, "mean": v, "sem": 0.1, "n": 2, "better": b}
               for m, k, v, b in (("fovex", "nss", 2.0, "higher"), ("gradcam", "nss", 1.0, "higher"),
                                  ("fovex", "deletion", 0.3, "lower"), ("gradcam", "deletion", 0.3, "lower"))],
              ["method", "metric", "mean", "sem", "n", "better"])
    for index, name in enumerate(IDS):
        png(root / "stimuli" / name, size=(40, 30), colour=(index * 30, 90, 160))
    matrix = RNG.random((len(IDS), len(IDS)))
    matrix = matrix + matrix.T
    np.fill_diagonal(matrix, 0)
    write_rdms(root / "rdms.h5", IDS, {"fc": matrix}, metric="correlation")
    write_resolved_config(root / "rdms.config.yaml", "net2brain rdm", {"out": "rdms.h5", "metric": "correlation"})
    (root / "factors.csv").write_text("stimulus,category\n" + "".join(f"{n},a\n" for n in IDS))
    (root / "acts.h5.partial").write_bytes(b"\x89HDF\r\n")
    (root / "broken.csv").write_bytes(b"\xff\xfe\x00binary")
    (root / ".rdms.h5.lock").write_text("")
    (root / "notes.txt").write_text("the lab's notes")
    return root


class Page(HTMLParser):
    """The links, images, ids and tags of a report page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links, self.images, self.ids, self.tags, self.bold = [], [], [], [], []
        self._in_bold = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs)
        self._in_bold = tag == "b"

    def handle_data(self, data):
        if self._in_bold:
            self.bold.append(data)
            self._in_bold = False


def decode(image: dict) -> Image.Image:
    """The embedded image of an <img> tag's attributes, decoded."""
    header, data = image["src"].split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64"), header
    decoded = Image.open(io.BytesIO(base64.b64decode(data)))
    decoded.load()
    return decoded
