"""The encoding engine's memory: bounded by `encoding_memory` and, once the responses are
held, independent of how many targets there are (they are solved in chunks); a run that
would not fit is refused before it allocates."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from net2brain_fovex import memory
from net2brain_fovex.brain.encoding import (
    CHUNK_BYTES,
    EncodingParameters,
    encoding_memory,
    fit_encoding,
    target_chunk,
)
from net2brain_fovex.errors import ConfigError

# a child process: make the inputs, warm up (imports, thread pools), then fit and report the
# peak resident memory above what it held before the fit
MEASURE = """
import json, sys
import numpy as np
from net2brain_fovex.brain.encoding import EncodingParameters, encoding_memory, fit_encoding

stimuli, features, targets, chunk = (int(v) for v in sys.argv[1:5])
rng = np.random.default_rng(0)
x = rng.standard_normal((stimuli, features), dtype=np.float32)
y = rng.standard_normal((stimuli, targets), dtype=np.float32)
parameters = EncodingParameters(chunk=chunk)
fit_encoding(x[:, :20], y[:, :chunk], parameters, keep_predictions=False)

def status(field):  # this process's own memory (getrusage's maxrss would include its parent's, kept over exec)
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets the peak to the present, so that the peak is the fit's
before = status("VmRSS")
fit_encoding(x, y, parameters, keep_predictions=False)
peak = status("VmHWM")
print(json.dumps({"growth": peak - before,
                  "estimate": encoding_memory(stimuli, features, targets, parameters, keep_predictions=False)}))
"""


def measured(stimuli: int, features: int, targets: int, chunk: int) -> dict:
    # glibc's heap keeps freed blocks for reuse (its mmap threshold rises to the largest block
    # freed, one arena per thread), so that the peak resident memory drifts by tens of MB with
    # the number of chunks; a fixed threshold returns every block of 1 MB or more when it is
    # freed, so that the peak measures what the fit holds
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": str(2**20), "MALLOC_ARENA_MAX": "2"}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(stimuli), str(features), str(targets), str(chunk)],
                          capture_output=True, text=True, check=True, timeout=600, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_is_within_the_estimate_and_does_not_grow_with_the_targets():
    few = measured(500, 1_500, 6_000, 2_000)
    many = measured(500, 1_500, 48_000, 2_000)
    for run in (few, many):
        assert run["growth"] <= run["estimate"]
    # 8x the targets: the growth is the scores' few float64 values per target, not the chunks'
    per_target = 8 * (3 * EncodingParameters().folds + 3)
    assert many["growth"] - few["growth"] <= 42_000 * per_target + 32 * 2**20


def test_the_chunk_shrinks_with_many_stimuli_to_stay_within_its_budget():
    parameters = EncodingParameters()
    assert target_chunk(parameters, 1_000) == min(parameters.chunk, CHUNK_BYTES // (96 * 1_000))
    assert target_chunk(parameters, 10_000) * 96 * 10_000 <= CHUNK_BYTES
    assert target_chunk(EncodingParameters(chunk=50), 100) == 50


def test_the_documented_example_of_200000_voxels_and_10000_stimuli():
    # README: 200,000 voxels x 10,000 stimuli of a 4,096-feature layer, 5 folds: about 4.1 GB
    # beside the 7.5 GB of float32 responses (7.5 GB more if the predictions are kept)
    estimate = encoding_memory(10_000, 4_096, 200_000, EncodingParameters(), keep_predictions=False)
    assert 3.9 * 2**30 < estimate < 4.2 * 2**30
    kept = encoding_memory(10_000, 4_096, 200_000, EncodingParameters())
    assert kept - estimate == 4 * 10_000 * 200_000
    reduced = encoding_memory(10_000, 4_096, 200_000, EncodingParameters(reduce="pca:500"), keep_predictions=False)
    assert reduced < estimate


def test_a_fit_that_would_not_fit_in_memory_is_refused_before_it_allocates(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**6)
    x = np.ones((40, 5), dtype=np.float32) + np.arange(40, dtype=np.float32)[:, None] ** np.arange(5)
    y = np.random.default_rng(0).standard_normal((40, 3000)).astype(np.float32)
    with pytest.raises(ConfigError, match="reduce the features"):
        fit_encoding(x, y, EncodingParameters())
