"""Typed exceptions. The CLI maps them to exit codes: usage/missing weights -> 2, others -> 1."""

from __future__ import annotations


class LookalikeError(Exception):
    """Base class for every error lookalike raises on purpose."""

    exit_code = 1


class UsageError(LookalikeError):
    """The caller asked for something that cannot work (unknown metric, bad option...)."""

    exit_code = 2


class UnknownMetricError(UsageError, KeyError):
    """No metric of that name is registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown metric"


class WeightsMissingError(LookalikeError):
    """Weights are not in the cache and cannot be downloaded (offline, no route...)."""

    exit_code = 2


class WeightsCorruptError(LookalikeError):
    """A weights file does not match its expected sha256 or cannot be parsed."""


class ImageLoadError(LookalikeError):
    """An image file could not be turned into pixels. ``reason`` is a short machine-readable code."""

    reason = "unreadable"

    def __init__(self, path: object, detail: str = "") -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {self.reason}" + (f" ({detail})" if detail else ""))


class EmptyFileError(ImageLoadError):
    reason = "empty file"


class NotAnImageError(ImageLoadError):
    reason = "not an image"


class TruncatedImageError(ImageLoadError):
    reason = "truncated or corrupt image"


class DecompressionBombError(ImageLoadError):
    reason = "image too large (decompression-bomb limit)"


class UnsupportedImageError(ImageLoadError):
    reason = "unsupported image format"
