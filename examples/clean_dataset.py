"""Dataset cleaning: flag mislabelled clips and duplicates in a folder of speaker folders.

Run it:  python examples/clean_dataset.py [DATASET_DIR]

DATASET_DIR holds one sub-folder per speaker, with that speaker's clips in it. Without it, the
example builds one in a temporary folder from the bundled voices, with two planted problems: a
clip of "bob" filed under "alice", and a second copy of one of carol's clips.

:func:`speakerembed.clean_dataset` embeds every clip, compares each with its own speaker's
robust centroid (leaving the clip out), with the nearest other speaker and with the nearest
other clip, and returns a report sorted worst first. The thresholds are measured on real
speech; see docs/analysis.rst.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from speakerembed import clean_dataset

AUDIO = Path(__file__).resolve().parent / "audio"


def build_demo(root: Path) -> None:
    for voice in ("alice", "bob", "carol"):
        (root / voice).mkdir()
        for clip in sorted(AUDIO.glob(f"{voice}_*.wav")):
            if clip.name != "bob_2.wav":
                shutil.copy(clip, root / voice / clip.name)
    shutil.copy(AUDIO / "bob_2.wav", root / "alice" / "alice_4.wav")  # bob's clip, mislabelled
    shutil.copy(AUDIO / "carol_1.wav", root / "carol" / "carol_1_again.wav")  # duplicate


def report(dataset: Path) -> None:
    result = clean_dataset(dataset, weights="resemblyzer", device="cpu")  # offline weights
    c = result.columns
    print(f"{len(result)} clips, {int(result.flagged.sum())} flagged (worst first):")
    for i in range(len(result)):
        name = Path(c["id"][i]).relative_to(dataset)
        flags = []
        if c["likely_other_speaker"][i]:
            flags.append(f"LIKELY {c['suggested_speaker'][i]}")
        if c["outlier"][i]:
            flags.append("OUTLIER")
        if c["near_duplicate"][i]:
            flags.append(f"DUPLICATE of {Path(c['duplicate_of'][i]).relative_to(dataset)}")
        scores = f"own {c['own_similarity'][i]:.3f}  nearest {c['nearest_speaker'][i]:<6} "
        scores += f"{c['nearest_similarity'][i]:.3f}"
        print(f"  {name!s:<24} {scores}  {', '.join(flags) or 'ok'}")


def main() -> None:
    if len(sys.argv) > 1:
        report(Path(sys.argv[1]).resolve())
        return
    with tempfile.TemporaryDirectory() as tmp:
        build_demo(Path(tmp))
        report(Path(tmp))


if __name__ == "__main__":
    main()
