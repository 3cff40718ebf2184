"""The compute core shared by the `net2brain` and `fovex` command-line tools.

Only torch, numpy, h5py and their kin are imported here: never typer or rich, so every
routine can be used and tested without the command-line layer.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("net2brain-fovex")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
