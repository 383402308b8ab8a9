"""Speaker verification: is this clip the enrolled voice? Accept when the cosine clears a threshold.

Run it on the bundled voices (each voice enrolled with its first two clips, every third clip
tested against every enrolled voice):

    python examples/verify_speakers.py

or on your own files (one voice enrolled from one or more clips, each test clip checked):

    python examples/verify_speakers.py --enroll me_1.wav me_2.wav --test call.wav other.flac

The default threshold, 0.75, was measured on real speech with these (Resemblyzer) weights:
on LibriSpeech test-other (270 same-speaker and 1810 different-speaker pairs) it lets through
one different-speaker pair in 1810 and rejects 2.2 % of genuine pairs; the equal-error-rate
threshold there is 0.72 (1.1 % of each). The old value, 0.8, rejected 11.5 % of the genuine
LibriSpeech pairs. See docs/verification.rst and docs/scripts/thresholds.py.

A threshold depends on the weights, the recording conditions and the length of the clips (on
VCTK, different speakers reading the same sentence in one studio score far higher): measure
yours with ``speakerembed verify`` on trials from your own data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speakerembed import SpeakerEmbedder, cosine_similarity

AUDIO = Path(__file__).resolve().parent / "audio"
VOICES = ("alice", "bob", "carol")
#: LibriSpeech's threshold at 0.1 % false accepts, Resemblyzer weights (docs/_static/thresholds.csv).
THRESHOLD = 0.75


def bundled(embedder: SpeakerEmbedder, threshold: float) -> int:
    enrolled = {v: embedder.embed_speaker([AUDIO / f"{v}_1.wav", AUDIO / f"{v}_2.wav"]) for v in VOICES}
    tests = {v: embedder.embed_utterances(AUDIO / f"{v}_3.wav")[0] for v in VOICES}
    errors = 0
    for claimed in VOICES:
        for actual in VOICES:
            score = cosine_similarity(enrolled[claimed], tests[actual])
            accepted = score >= threshold
            right = accepted == (claimed == actual)
            errors += not right
            verdict = "accept" if accepted else "reject"
            mark = "" if right else "  (WRONG)"
            print(f"{actual + '_3.wav':<11} claims to be {claimed:<5}  cosine {score:.3f}  {verdict}{mark}")
    trials = len(VOICES) ** 2
    print(f"threshold {threshold}: {trials - errors}/{trials} trials decided correctly")
    return 0 if errors == 0 else 1


def own_files(embedder: SpeakerEmbedder, enroll: list[Path], tests: list[Path], threshold: float) -> int:
    voice = embedder.embed_speaker(enroll)
    print(f"enrolled one voice from {len(enroll)} file(s)")
    for path in tests:
        score = cosine_similarity(voice, embedder.embed_utterances(path)[0])
        verdict = "accept: same voice" if score >= threshold else "reject: another voice"
        print(f"{path.name:<24} cosine {score:.3f}  {verdict}")
    print(f"threshold {threshold}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"accept at or above this cosine (default {THRESHOLD})",
    )
    parser.add_argument("--enroll", nargs="+", type=Path, metavar="FILE", help="clips of the voice to enrol")
    parser.add_argument("--test", nargs="+", type=Path, metavar="FILE", help="clips to check against it")
    args = parser.parse_args()
    if (args.enroll is None) != (args.test is None):
        parser.error("pass both --enroll and --test, or neither (for the bundled voices)")

    embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # offline weights; the threshold is theirs
    if args.enroll is None:
        return bundled(embedder, args.threshold)
    return own_files(embedder, args.enroll, args.test, args.threshold)


if __name__ == "__main__":
    raise SystemExit(main())
