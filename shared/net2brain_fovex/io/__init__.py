"""Files on disk: atomic outputs, the resumable row writer, our HDF5 layouts, shards and
their merge, provenance, config files and `describe`."""
from .._exports import lazy_exports

_EXPORTS = {
    "atomic_output": "atomic",
    "check_new_output": "atomic",
    "check_output_dir": "atomic",
    "make_output_dir": "atomic",
    "DatasetSpec": "rows",
    "RowWriter": "rows",
    "open_h5": "hdf5",
    "read_stimuli": "hdf5",
    "KINDS": "hdf5",
    "write_csv": "tables",
    "Shard": "shards",
    "parse_shard": "shards",
    "plan_output": "shards",
    "merge_shards": "shards",
    "merge_rows": "shards",
    "check_shards": "shards",
    "build_provenance": "provenance",
    "command_scope": "provenance",
    "load_config": "config",
    "write_resolved_config": "config",
    "read_resolved_config": "config",
    "config_path_for": "config",
    "record_options": "config",
    "describe": "file_info",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
