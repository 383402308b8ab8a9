"""Voice libraries: named voices that persist, open-set identification, reference picking.

.. code-block:: python

    from speakerembed import VoiceLibrary, pick_reference

    lib = VoiceLibrary("voices.db", weights="resemblyzer")
    lib.enroll("alice", ["alice_1.wav", "alice_2.wav"])
    answer = lib.identify(["who.wav"])[0]
    answer.voice, answer.score, answer.reason

See :doc:`/voices`.
"""

from __future__ import annotations

from .library import (
    DEFAULT_FALSE_ALARM,
    Identification,
    Match,
    Voice,
    VoiceLibrary,
    check_name,
    open_set_threshold,
)
from .reference import ReferenceChoice, pick_reference

__all__ = [
    "DEFAULT_FALSE_ALARM",
    "Identification",
    "Match",
    "ReferenceChoice",
    "Voice",
    "VoiceLibrary",
    "check_name",
    "open_set_threshold",
    "pick_reference",
]
