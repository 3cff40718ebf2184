"""Command-line machinery shared by `net2brain` and `fovex`: config files, error
handling, progress bars and the common model options. The compute lives in `shared/`."""
