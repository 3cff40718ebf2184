"""The `fovex` command: explain image classifiers with foveated fixations (FovEx)."""
import cli_common  # noqa: F401  (sets the thread environment before torch is imported)
