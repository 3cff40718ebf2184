"""The core entry points: each checks its options at its top, before it reads any input
(the inputs here do not exist: an option error must come first), and names the Python
parameter; their errors are ValueErrors as well as the toolbox's."""
from __future__ import annotations

import pytest

from net2brain_fovex import (
    evaluate_to_file,
    explain_to_file,
    extract_to_file,
    rdms_to_file,
    rsa_to_file,
    searchlight_to_file,
)
from net2brain_fovex.errors import ConfigError, InputError, ToolboxError, UnknownNameError

CASES = {
    "searchlight radius": (lambda out: searchlight_to_file(out / "gone.h5", out / "sl", betas=[out / "gone.nii.gz"],
                                                            radius=0), "`radius` must be a positive number"),
    "searchlight fdr": (lambda out: searchlight_to_file(out / "gone.h5", out / "sl", betas=[out / "gone.nii.gz"],
                                                         radius=6, fdr=2), "`fdr` must be between 0 and 1"),
    "rsa comparison": (lambda out: rsa_to_file(out / "gone.h5", out / "gone", out / "r.csv", compare="cosine"),
                       "unknown comparison 'cosine'"),
    "rsa folds": (lambda out: rsa_to_file(out / "gone.h5", out / "gone", out / "r.csv", folds=1),
                  "`folds` must be at least 2"),
    "rdm memory": (lambda out: rdms_to_file(out / "r.h5", activations=out / "gone.h5", memory=0),
                   "`memory` must be at least 1 MB"),
    "rdm metric": (lambda out: rdms_to_file(out / "r.h5", activations=out / "gone.h5", metric="mahalanobis"),
                   "unknown metric 'mahalanobis'"),
    "extract batch size": (lambda out: extract_to_file("resnet18", out / "gone", out / "a.h5", batch_size=0),
                           "`batch_size` must be at least 1"),
    "extract reduce": (lambda out: extract_to_file("resnet18", out / "gone", out / "a.h5", reduce="pca:3"),
                       "`reduce` 'pca:3' is not understood"),
    "explain parameters": (lambda out: explain_to_file("resnet18", out / "gone", out / "m.h5",
                                                       parameters={"scanpath_length": 0}),
                           "invalid FovEx parameter `scanpath_length`"),
    "explain method": (lambda out: explain_to_file("resnet18", out / "gone", out / "m.h5", method="lime"),
                       "unknown method 'lime'"),
    "evaluate step": (lambda out: evaluate_to_file("resnet18", out / "gone", [out / "m.h5"], out / "e.csv", step=0),
                      "`step` must be at least 1 pixel"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_options_are_checked_before_any_input_is_read(tmp_path, case):
    call, message = CASES[case]
    with pytest.raises(ConfigError, match=message) as caught:
        call(tmp_path)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ToolboxError)


def test_input_and_name_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        rdms_to_file(tmp_path / "r.h5", activations=tmp_path / "gone.h5")
    assert issubclass(InputError, ValueError) and issubclass(UnknownNameError, ValueError)
