"""Diarize a conversation made from the example clips, and score it against the known turns.

Three synthetic voices (alice, bob, carol) take turns; :func:`speakerembed.diarize` finds how
many voices there are and when each speaks, and :func:`speakerembed.analysis.scoring.der` scores the
answer. Runs offline in seconds with the Resemblyzer weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from speakerembed import diarize
from speakerembed.analysis.scoring import der

AUDIO = Path(__file__).resolve().parent / "audio"
ORDER = ["alice_1", "bob_1", "carol_1", "alice_2", "bob_2", "carol_2", "alice_3", "bob_3"]


def main() -> None:
    """Build the conversation, diarize it, print the turns and the DER."""
    parts, reference, t = [], [], 0.0
    for name in ORDER:
        wave, sr = sf.read(AUDIO / f"{name}.wav", dtype="float32")
        parts += [np.zeros(int(0.4 * sr), np.float32), wave]
        t += 0.4
        reference.append((t, t + len(wave) / sr, name.split("_")[0]))
        t += len(wave) / sr
    conversation = np.concatenate(parts)
    d = diarize(conversation, sample_rate=sr, weights="resemblyzer", device="cpu")
    print(f"{len(d.speakers)} speakers found (3 true) in {d.duration_s:.1f} s")
    for turn in d.turns:
        print(f"  {turn.start_s:6.2f} - {turn.end_s:6.2f}  {turn.speaker}")
    r = der(reference, d.turns, collar=0.25)
    print(
        f"DER {r.der:.1%} (missed {r.missed_s:.2f} s, false alarm {r.false_alarm_s:.2f} s, "
        f"confusion {r.confusion_s:.2f} s)"
    )


if __name__ == "__main__":
    main()
