"""The `net2brain` command: compare deep network representations with brain data."""
import cli_common  # noqa: F401  (sets the thread environment before torch is imported)
