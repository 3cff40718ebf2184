"""Stimulus sets: discovery, stable ordering, image decoding and video frame sampling.

Order
-----
A folder's stimuli are its image and video files (not sub-folders, not hidden files) in
natural sort order of their file names: digit runs compare as numbers, so `img_2.png`
comes before `img_10.png`; letters compare case-insensitively, ties broken by the exact
name. A list file keeps its own line order. The stimulus id is the file name for a
folder and the line as written for a list.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "Stimulus", "natural_key", "discover_stimuli", "as_stimuli", "fingerprint",
           "load_image", "video_frame_indices", "load_video_frames"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm")


@dataclass(frozen=True)
class Stimulus:
    """One stimulus: its id (as stored in `/stimuli`) and its file."""

    id: str
    path: Path

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs numerically and letters case-insensitively."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p), name


def discover_stimuli(source: str | Path, parameter: str = "stimuli") -> list[Stimulus]:
    """The stimuli of a folder (natural sort) or of a text file listing paths (its order).

    In a list file, blank lines and lines starting with '#' are skipped and relative
    paths are taken relative to the list file's folder. `parameter` names the source in
    messages (`stimuli`, `images`).

    Parameters
    ----------
    source : path
        A folder of image and video files (not sub-folders, not hidden files), or a UTF-8
        text file listing them, one path per line.
    parameter : str, default "stimuli"
        The Python parameter that gave `source`, for messages.

    Returns
    -------
    list of Stimulus
        In the order of the module docstring. An id is the file name for a folder and the
        line as written (stripped) for a list.

    Raises
    ------
    InputError
        Missing folder or list, no supported files, a listed file missing or of an
        unsupported kind, or an id listed twice.
    """
    source = Path(source)
    supported = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    if source.is_dir():
        try:
            files = [
                p for p in source.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in supported
            ]
        except OSError as error:  # a folder without read permission
            raise InputError(f"cannot read stimulus folder {source}: {error.strerror or error}; "
                             "make it readable (chmod u+rx) or give another folder") from None
        if not files:
            raise InputError(
                f"stimulus folder {source} holds no images or videos "
                f"(looked for {', '.join(supported)})"
            )
        files.sort(key=lambda p: natural_key(p.name))
        return [Stimulus(p.name, p) for p in files]
    if source.is_file():
        if source.suffix.lower() in supported:
            raise InputError(f"`{parameter}` {source} is a single stimulus; give its folder or a text file listing stimuli")
        return _read_list(source, supported)
    raise InputError(f"stimuli {source} do not exist; give a folder of images or a text file listing them")


def as_stimuli(source: str | Path | Sequence[Stimulus], parameter: str = "stimuli") -> list[Stimulus]:
    """The stimuli of a folder or list file (`discover_stimuli`), or given already.

    Parameters
    ----------
    source : path or sequence of Stimulus
    parameter : str, default "stimuli"
        The parameter that names `source`, for messages.
    """
    return discover_stimuli(source, parameter) if isinstance(source, (str, Path)) else list(source)


def _read_list(list_file: Path, supported: tuple[str, ...]) -> list[Stimulus]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read stimulus list {list_file}: {error}; give a folder of images or a UTF-8 text "
                         "file listing them, one path per line") from None
    stimuli: list[Stimulus] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else list_file.parent / entry
        where = f"{list_file}, line {number}"
        if path.suffix.lower() not in supported:
            raise InputError(f"{where}: {entry!r} is not an image or video ({', '.join(supported)})")
        if not path.is_file():
            raise InputError(f"{where}: file {path} does not exist")
        if entry in seen:
            raise InputError(f"{where}: {entry!r} is listed twice; stimulus ids must be unique")
        seen.add(entry)
        stimuli.append(Stimulus(entry, path))
    if not stimuli:
        raise InputError(f"stimulus list {list_file} lists no files")
    return stimuli


def fingerprint(stimuli: Sequence[Stimulus]) -> str:
    """A content hash of the stimulus list: ids, sizes and modification times."""
    digest = hashlib.sha256()
    for stimulus in stimuli:
        stat = stimulus.path.stat()
        digest.update(f"{stimulus.id}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_image(path: Path) -> Image.Image:
    """Decode an image file as RGB; a corrupt or truncated file raises `InputError`."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        raise InputError(f"cannot decode image {path}: {error}; replace or remove the file") from None


def video_frame_indices(total: int, count: int) -> np.ndarray:
    """`count` evenly spaced frame indices over a video of `total` frames (first and last
    included); fewer than `count` frames repeat the nearest ones."""
    if total < 1:
        raise ValueError("a video needs at least one frame")
    return np.rint(np.linspace(0, total - 1, count)).astype(int)


def load_video_frames(path: Path, count: int) -> list[Image.Image]:
    """Decode `count` evenly spaced frames of a video as RGB images (two passes: one
    counts the frames, one decodes only the chosen ones, so memory holds `count` frames).

    When the container promises more frames than it holds, the frames are chosen again
    among those decoded (one more pass). PyAV is imported on first use.

    Parameters
    ----------
    path : path
        A video file.
    count : int
        The frames wanted, at least 1: evenly spaced with the first and the last included
        (`video_frame_indices`); a video with fewer frames repeats some.

    Returns
    -------
    list of PIL.Image.Image
        `count` RGB frames, in time order.

    Raises
    ------
    InputError
        No video stream, a file that cannot be decoded, or no decodable frame.
    """
    import av  # PyAV: imported here because only video stimuli need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream; replace or remove the file")
            total = container.streams.video[0].frames or sum(1 for p in container.demux(video=0) if p.size)
        frames, decoded = _decode_frames(path, video_frame_indices(total, count)) if total else ({}, 0)
        if 0 < decoded < total:  # the container promised more frames than it holds
            frames, decoded = _decode_frames(path, video_frame_indices(decoded, count))
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise InputError(f"cannot decode video {path}: {error}; replace or remove the file") from None
    if not frames:
        raise InputError(f"video {path} holds no decodable frames; replace or remove the file")
    return list(frames)


def _decode_frames(path: Path, wanted: np.ndarray) -> tuple[list[Image.Image], int]:
    """The frames at `wanted` indices (in that order, repeats allowed) and the number of
    frames decoded; an empty list when the video ends before the last wanted index."""
    import av

    keep: dict[int, Image.Image] = {}
    wanted_set = set(wanted.tolist())
    last = int(wanted.max())
    decoded = 0
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            decoded = index + 1
            if index in wanted_set:
                keep[index] = frame.to_image().convert("RGB")
            if index == last:
                break
        else:
            return [], decoded
    return [keep[i] for i in wanted.tolist()], decoded
