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
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..checks import check_range
from ..errors import InputError
from ..io.paths import what_is_there

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "Stimulus", "natural_key", "discover_stimuli", "as_stimuli",
           "check_stimulus_file",
           "fingerprint", "load_image", "pixel_values", "video_frame_indices", "video_clip_indices",
           "load_video_frames", "load_video_clips"]

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
            candidates = [p for p in source.iterdir() if not p.name.startswith(".") and p.suffix.lower() in supported]
            files = [p for p in candidates if not p.is_dir()]
        except OSError as error:  # a folder without read permission
            raise InputError(f"cannot read stimulus folder {source}: {error.strerror or error}; "
                             "make it readable (chmod u+rx) or give another folder") from None
        if not files:
            raise InputError(
                f"stimulus folder {source} holds no images or videos "
                f"(looked for {', '.join(supported)})"
            )
        for path in files:
            check_stimulus_file(path, f"stimulus folder {source}")
        files.sort(key=lambda p: natural_key(p.name))
        return [Stimulus(p.name, p) for p in files]
    if source.is_file():
        if source.suffix.lower() in supported:
            raise InputError(f"`{parameter}` {source} is a single stimulus; give its folder or a text file listing stimuli")
        return _read_list(source, supported)
    raise InputError(f"stimulus folder or list {source} {what_is_there(source)}; give a folder of images or a text file listing them")


def check_stimulus_file(path: Path, where: str) -> None:
    """A stimulus is a regular file (through links) whose name is UTF-8 text, the
    encoding ids are stored in: a link to nothing, a FIFO or a name of other bytes is
    refused rather than skipped or mangled."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(path.name)
        raise InputError(f"{where}: the file name {raw!r} is not valid UTF-8; rename the file (stimulus ids are stored "
                         "as UTF-8 text)") from None
    if not path.is_file():
        raise InputError(f"{where}: {path.name} {what_is_there(path)}; remove it or give a regular file")


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
        lines = list_file.read_text(encoding="utf-8-sig").splitlines()  # -sig: a byte-order mark is not a path
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read stimulus list {list_file}: {error}; give a folder of images or a UTF-8 text "
                         "file listing them, one path per line") from None
    stimuli: list[Stimulus] = []
    seen: dict[str, int] = {}
    files: dict[tuple[int, int], tuple[int, str]] = {}  # (device, inode) -> (line, entry): one file by two names
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else list_file.parent / entry
        where = f"{list_file}, line {number}"
        if path.suffix.lower() not in supported:
            raise InputError(f"{where}: {entry!r} is not an image or video ({', '.join(supported)})")
        if not path.is_file():
            raise InputError(f"{where}: file {path} {what_is_there(path)}")
        if entry in seen:
            raise InputError(f"{where}: {entry!r} is listed twice (also on line {seen[entry]}); stimulus ids must be unique")
        status = path.stat()
        earlier = files.get((status.st_dev, status.st_ino))
        if earlier is not None:
            raise InputError(f"{where}: {entry!r} is the file of line {earlier[0]} ({earlier[1]!r}) again; list each "
                             "stimulus once")
        seen[entry], files[(status.st_dev, status.st_ino)] = number, (number, entry)
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
    """Decode an image file as 8-bit RGB (`pixel_values`); a corrupt or truncated file, or
    pixels outside the range of their kind, raise `InputError`."""
    values = pixel_values(path)
    return Image.fromarray(np.rint(values).astype(np.uint8) if values.dtype != np.uint8 else values)


def pixel_values(path: Path) -> np.ndarray:
    """The pixels of an image file as (H, W, 3) in [0, 255], whatever the mode Pillow reads.

    8-bit modes (L, P, RGB, RGBA, LA, CMYK, YCbCr, 1, ...) come as Pillow converts them to
    RGB (uint8; an alpha channel is dropped). Deeper modes are scaled by their own range
    (float32), where Pillow's conversion would clip them (a 16-bit PNG almost all white, a
    float TIFF in [0, 1] all black): 16-bit integers (I;16*) by 255 / 65535; 32-bit
    integers (I) as 16-bit data when they lie in [0, 65535], refused otherwise; floats
    (F) in [0, 1] by 255, in [0, 255] as they are, refused otherwise (and when not
    finite). An image of several frames (an animated GIF, a multi-page TIFF) gives its
    first, with a warning.
    """
    try:
        with Image.open(path) as image:
            image.load()
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                warnings.warn(f"{path} holds {frames} frames; the first is used", RuntimeWarning, stacklevel=2)
            if image.mode.startswith("I;16"):
                return _grey(np.asarray(image).astype(np.float32) * np.float32(255 / 65535))
            if image.mode in ("I", "F"):
                return _grey(_deep_pixels(np.asarray(image), image.mode, path))
            return np.asarray(image.convert("RGB"))
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        raise InputError(f"cannot decode image {path}: {error}; replace or remove the file") from None


def _deep_pixels(values: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """32-bit integer or float pixels scaled to [0, 255] (`pixel_values`)."""
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise InputError(f"image {path} holds NaN or infinite pixels; replace or remove the file")
    low, high = float(values.min()), float(values.max())
    if mode == "I" and 0 <= low and high <= 65535:
        return (values * (255 / 65535)).astype(np.float32)
    if mode == "F" and 0 <= low and high <= 1:
        return (values * 255).astype(np.float32)
    if mode == "F" and 0 <= low and high <= 255:
        return values.astype(np.float32)
    expected = "[0, 65535] (16-bit data)" if mode == "I" else "[0, 1] or [0, 255]"
    raise InputError(f"image {path} has {'integer' if mode == 'I' else 'floating-point'} pixels from {low:g} to "
                     f"{high:g}, outside {expected}; save it with 8 or 16 bits per channel")


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1)


def video_frame_indices(total: int, count: int) -> np.ndarray:
    """`count` evenly spaced frame indices over a video of `total` frames (first and last
    included); fewer than `count` frames repeat the nearest ones."""
    if total < 1:
        raise ValueError("a video needs at least one frame")
    return np.rint(np.linspace(0, total - 1, count)).astype(int)


def video_clip_indices(total: int, frames: int, clips: int) -> np.ndarray:
    """The frames of `clips` clips of `frames` frames over a video of `total` frames, as a
    (clips, frames) index array: the video is cut into `clips` equal segments and each
    clip takes `frames` evenly spaced frames of its segment, its first and last included.

    Raises `ValueError` when the video is shorter than the clips need (`clips * frames`
    frames); the caller names the file."""
    if total < clips * frames:
        raise ValueError(f"{clips} clip(s) of {frames} frames need {clips * frames} frames")
    bounds = [k * total // clips for k in range(clips + 1)]  # segment k holds frames bounds[k] .. bounds[k + 1] - 1
    return np.stack([np.rint(np.linspace(bounds[k], bounds[k + 1] - 1, frames)).astype(int) for k in range(clips)])


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
    ConfigError
        `count` out of range (`RANGES["frames"]`).
    InputError
        No video stream, a file that cannot be decoded, or no decodable frame.
    """
    check_range("frames", count)
    return _read_frames(path, lambda total: video_frame_indices(total, count))


def load_video_clips(path: Path, frames: int, clips: int = 1) -> list[list[Image.Image]]:
    """Decode `clips` clips of `frames` frames each (`video_clip_indices`) as RGB images,
    for a video model: its clips are never padded by repeating frames.

    Parameters
    ----------
    path : path
        A video file.
    frames, clips : int
        Frames per clip and clips per video.

    Returns
    -------
    list of list of PIL.Image.Image
        `clips` lists of `frames` frames, in time order.

    Raises
    ------
    ConfigError
        `frames` or `clips` out of range.
    InputError
        A video shorter than `clips * frames` frames, or one that cannot be decoded.
    """
    check_range("frames", frames)
    check_range("clips", clips)

    def choose(total: int) -> np.ndarray:
        try:
            return video_clip_indices(total, frames, clips).ravel()
        except ValueError as error:
            raise InputError(f"video {path} has {total} frames, but {error}; lower `frames` or `clips` "
                             "(or give a longer video)") from None

    chosen = _read_frames(path, choose)
    return [chosen[k * frames:(k + 1) * frames] for k in range(clips)]


def _read_frames(path: Path, choose: Callable[[int], np.ndarray]) -> list[Image.Image]:
    """The frames at the indices `choose(total frames)` of a video, in that order."""
    import av  # PyAV: imported here because only video stimuli need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream; replace or remove the file")
            total = container.streams.video[0].frames or sum(1 for p in container.demux(video=0) if p.size)
        frames, decoded = _decode_frames(path, choose(total)) if total else ({}, 0)
        if 0 < decoded < total:  # the container promised more frames than it holds
            frames, decoded = _decode_frames(path, choose(decoded))
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
