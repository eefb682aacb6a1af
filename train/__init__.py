"""Training recipes (TOML, one per file), installed with the package as `reid_export.recipes`."""
