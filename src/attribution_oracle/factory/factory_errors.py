"""Errors the ModelFactory raises; all are user errors the CLI prints as one line."""

from __future__ import annotations

from attribution_oracle.errors import UserError

__all__ = ["DataVerificationError", "FactoryError", "ManifestError", "RunMismatchError", "ScoringError"]


class FactoryError(UserError):
    """Base class of the ModelFactory's errors."""


class DataVerificationError(FactoryError):
    """Training data does not verify: an unpublished version, a missing or tampered blob, a root mismatch."""


class ManifestError(FactoryError):
    """A model manifest is missing, malformed, or one of its hashes does not verify."""


class RunMismatchError(FactoryError):
    """A run directory holds a checkpoint of a different training configuration."""


class ScoringError(FactoryError):
    """An inference the scorer cannot score as given (e.g. token ids outside the model's vocabulary)."""
