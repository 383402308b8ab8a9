"""The errors speakerembed raises.

Every error derives from :class:`SpeakerEmbedError`, and each one also derives from the
built-in exception it resembles, so ``except ValueError`` keeps working::

    SpeakerEmbedError(Exception)
    ├── AudioError(SpeakerEmbedError, ValueError)      bad or unreadable audio, bad sample rate
    │   └── InputTooLongError(AudioError)              longer than ``Pipeline.max_duration_s``
    ├── ConfigError(SpeakerEmbedError, ValueError)     an invalid Pipeline or argument
    ├── WeightsError(SpeakerEmbedError, RuntimeError)  weights missing, unsafe, corrupt or mismatched
    ├── BackendUnavailableError(SpeakerEmbedError, ImportError)
    │                                                  an optional package is not installed
    └── LibraryError(SpeakerEmbedError, RuntimeError)  a voice library that cannot be used:
        │                                              corrupt, locked, other weights
        └── UnknownVoiceError(LibraryError, KeyError)  no voice of that name in the library

Errors raised for one input of a batch carry that input in :attr:`SpeakerEmbedError.source`
(its index, or its path) and name it in the message.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "BackendUnavailableError",
    "ConfigError",
    "InputTooLongError",
    "LibraryError",
    "SpeakerEmbedError",
    "UnknownVoiceError",
    "WeightsError",
]


class SpeakerEmbedError(Exception):
    """Base class of every error raised by speakerembed.

    Attributes
    ----------
    source : str or None
        The input the error is about, as the message names it: ``"input 3"`` or a path.
    stage : str or None
        The pipeline stage that failed (``"load"``, ``"resample"``, ``"trim"``, ``"mel"``,
        ``"encode"``, ``"consolidate"``), where the error belongs to one.
    """

    def __init__(self, message: str, *, source: str | None = None, stage: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.stage = stage

    def __str__(self) -> str:
        if self.source is not None and not self.message.startswith(self.source):
            return f"{self.source}: {self.message}"
        return self.message


class AudioError(SpeakerEmbedError, ValueError):
    """The audio cannot be embedded: unreadable, empty, silent, non-finite, or a bad sample rate."""


class InputTooLongError(AudioError):
    """The audio is longer than the configured ``max_duration_s``."""


class ConfigError(SpeakerEmbedError, ValueError):
    """A configuration value (a :class:`~speakerembed.Pipeline` field or an argument) is invalid."""


class WeightsError(SpeakerEmbedError, RuntimeError):
    """Encoder weights cannot be found, are unsafe to load, are corrupt, or do not fit the model."""


class BackendUnavailableError(SpeakerEmbedError, ImportError):
    """An optional package that this feature needs is not installed."""


class LibraryError(SpeakerEmbedError, RuntimeError):
    """A voice library cannot be opened or changed: corrupt, locked, or made with other weights."""


class UnknownVoiceError(LibraryError, KeyError):
    """No voice of that name is enrolled in the library."""


def missing_backend(package: str, extra: str, feature: str) -> BackendUnavailableError:
    """Build the error for an optional dependency that is not installed."""
    return BackendUnavailableError(
        f"{feature} needs the optional package {package!r}, which is not installed; "
        f"install it with: pip install 'speakerembed[{extra}]'"
    )
