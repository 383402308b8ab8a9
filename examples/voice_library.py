"""A voice library: enrol two voices, identify clips open-set, and pick a reference clip.

Runs offline in seconds on the example audio (the Resemblyzer weights:
``pip install --no-deps resemblyzer``). The library is an SQLite file in a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from speakerembed import SpeakerEmbedder, VoiceLibrary, pick_reference

AUDIO = Path(__file__).resolve().parent / "audio"


def main() -> None:
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        lib = VoiceLibrary(Path(tmp) / "voices.db", embedder=embedder)
        for name in ("alice", "bob"):
            voice = lib.enroll(name, [AUDIO / f"{name}_1.wav", AUDIO / f"{name}_2.wav"], conditioning=True)
            print(f"enrolled {voice.name} from {len(voice.clips)} clips")
        print(f"library: {len(lib)} voices, weights {lib.weights.short}")
        # alice and bob are enrolled; carol is not, so the right answer for her is nobody.
        for clip in ("alice_3.wav", "bob_3.wav", "carol_3.wav"):
            answer = lib.identify([AUDIO / clip])[0]
            best = answer[0]
            print(
                f"{clip}: voice={answer.voice} (best {best.voice} {best.score:.3f}, "
                f"threshold {answer.threshold:.3f})"
            )
        cond = lib.conditioning("alice")  # stored at enrolment: no audio is read again
        print(f"alice's conditioning embedding: shape {cond.shape}, dtype {cond.dtype}")
        choice = pick_reference([AUDIO / f"alice_{i}.wav" for i in (1, 2, 3)], embedder=embedder)
        print(f"reference for alice: {Path(choice.clip).name}, cut at {choice.start_s:.2f} s")
        for reason in choice.reasons:
            print(f"  {reason}")
        lib.close()


if __name__ == "__main__":
    main()
