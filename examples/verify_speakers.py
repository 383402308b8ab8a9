"""Speaker verification: is this clip the enrolled voice? Accept when the cosine clears a threshold.

Run it:  python examples/verify_speakers.py [--threshold 0.8]

Each voice is enrolled with its first two clips (a speaker embedding), and every third clip is
tested against every enrolled voice. Pick the threshold on your own data: it depends on the
weights, the recording conditions and the length of the clips.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speakerembed import SpeakerEmbedder, cosine_similarity

AUDIO = Path(__file__).resolve().parent / "audio"
VOICES = ("alice", "bob", "carol")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.8, help="accept at or above this cosine")
    args = parser.parse_args()

    embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # offline weights
    enrolled = {v: embedder.embed_speaker([AUDIO / f"{v}_1.wav", AUDIO / f"{v}_2.wav"]) for v in VOICES}

    tests = {v: embedder.embed_utterances(AUDIO / f"{v}_3.wav")[0] for v in VOICES}
    errors = 0
    for claimed in VOICES:
        for actual in VOICES:
            score = cosine_similarity(enrolled[claimed], tests[actual])
            accepted = score >= args.threshold
            right = accepted == (claimed == actual)
            errors += not right
            verdict = "accept" if accepted else "reject"
            mark = "" if right else "  (WRONG)"
            print(f"{actual + '_3.wav':<11} claims to be {claimed:<5}  cosine {score:.3f}  {verdict}{mark}")
    trials = len(VOICES) ** 2
    print(f"threshold {args.threshold}: {trials - errors}/{trials} trials decided correctly")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
