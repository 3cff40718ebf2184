"""Command-line machinery shared by `net2brain` and `fovex`: config files, error
handling, progress bars and the common model options. The compute lives in `shared/`."""
import os

# Decoding and HDF5 writes run in background threads beside torch's OpenMP workers; spinning
# idle workers would take their cores (measured: about 10% of an extraction's time on 2 cores).
# Set before torch is imported; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
