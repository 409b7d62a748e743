"""geograph's own error types.

Every problem with user input raises :class:`GeographError` (or a subclass) whose message
names the file, the row and the field involved, so a user can fix the input without
reading a traceback.
"""

from __future__ import annotations

from pathlib import Path


class GeographError(Exception):
    """Base class of every error geograph raises on purpose."""


class DataValidationError(GeographError, ValueError):
    """Input data breaks a data contract.

    Args:
        message: What is wrong and what was expected.
        file: The file the data came from (None for in-memory frames).
        row: Zero-based data row (header excluded), when one row is to blame.
        field: The column / field name, when one is to blame.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        self.reason = message
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(GeographError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class CheckpointError(GeographError):
    """A checkpoint or cache file is missing, truncated or corrupt."""


class TrackingError(GeographError):
    """The MLflow tracking store cannot be reached or a run cannot be found."""
