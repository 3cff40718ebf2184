"""Memory a run will need, estimated from its options before it allocates anything.

A run whose estimate exceeds the memory available is refused at once (`ConfigError`),
saying how much it needs and which option lowers it, instead of being killed by the
operating system midway without a word. Estimates count the large arrays a run holds at
its peak (documented where each is made); they are deliberately generous by a small
factor, not exact.
"""
from __future__ import annotations

import os

from .errors import ConfigError

__all__ = ["CGROUP_FILES", "available_bytes", "check_memory", "format_bytes"]


# cgroup v2, then v1: the memory limit of this process's group and what the group uses
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def available_bytes(meminfo: str = "/proc/meminfo", cgroups: tuple[tuple[str, str], ...] = CGROUP_FILES) -> int:
    """The memory this process may still use: the system's available memory (Linux's
    MemAvailable), within the limit of its control group when it has one (a SLURM job's
    allocation, a container's limit). Without /proc (not Linux), the free physical
    pages; where even that is unknown, no limit."""
    available = None
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not a POSIX system: no estimate
            return 2**62
    for limit_file, usage_file in cgroups:
        try:
            with open(limit_file, encoding="ascii") as handle:
                limit = handle.read().strip()
            with open(usage_file, encoding="ascii") as handle:
                usage = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit():  # "max" (v2) or a huge number (v1): no limit
            available = min(available, int(limit) - usage)
        break
    return max(available, 0)


def format_bytes(count: float) -> str:
    """`1.5 GB`, `300 MB`."""
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 2**10:.0f} kB"


def check_memory(needed: float, *, what: str, lower: str) -> None:
    """Refuse a run that needs more memory than is available.

    Parameters
    ----------
    needed : float
        The estimate in bytes.
    what : str
        What needs it (`the searchlight of 235001 centres`), for the message.
    lower : str
        How to need less (`lower \\`batch_size\\``), for the message.

    Raises
    ------
    ConfigError
        `needed` exceeds `available_bytes()`.
    """
    available = available_bytes()
    if needed > available:
        raise ConfigError(f"{what} needs about {format_bytes(needed)} of memory, but {format_bytes(available)} "
                          f"are available; {lower}")
