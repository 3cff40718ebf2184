"""The `net2brain` command: compare deep network representations with brain data."""
