"""Errors reid-export raises on purpose.

Every message says what failed, what was expected, what was found and how to fix it.
The CLI prints these without a traceback; anything else is a bug.
"""

__all__ = ["ReidExportError", "DataError", "CheckpointError", "ExportError", "RuntimeUnavailable"]


class ReidExportError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class DataError(ReidExportError):
    """A data folder, file name or image that cannot be used."""


class CheckpointError(ReidExportError):
    """A checkpoint or weights file that does not match what was asked for."""


class ExportError(ReidExportError):
    """An export that failed or produced an artefact that does not match PyTorch."""


class RuntimeUnavailable(ReidExportError):
    """A runtime (backend, device or execution provider) that is not installed or not usable here."""
