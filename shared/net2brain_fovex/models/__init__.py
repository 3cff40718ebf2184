"""Models: their sources, loading with offline weights, preprocessing, layers and their
capture."""
from .._exports import lazy_exports

_EXPORTS = {
    "SOURCES": "sources",
    "ModelSource": "sources",
    "list_models": "sources",
    "find_source": "sources",
    "LoadedModel": "loading",
    "load_model": "loading",
    "load_state_dict_file": "weights",
    "apply_state_dict": "weights",
    "Preprocessing": "preprocessing",
    "LayerInfo": "layers",
    "list_layers": "layers",
    "select_layers": "layers",
    "top_layers": "layers",
    "capture": "layers",
    "run_layers": "layers",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
