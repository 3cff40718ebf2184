"""The `fovex` command: explain image classifiers with foveated fixations (FovEx)."""
