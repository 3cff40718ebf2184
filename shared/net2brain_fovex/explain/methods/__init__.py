"""The explanation methods, one module each (`net2brain_fovex.explain.registry` lists
them); `cam` holds what the class-activation-map methods share."""
__all__: list[str] = []
