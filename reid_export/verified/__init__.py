"""What exports AND runs a runtime: parity checks, accuracy-controlled INT8, export pipelines.

This layer sits above both ``reid_export.export`` (writers) and ``reid_export.runtimes``
(loaders), which must not import each other; ``reid_export.bench`` and the CLI sit above it.
"""
