"""Peak memory of ``embed_windows`` on long files: it should not grow with the file's length.

Run it from the repository root::

    python benchmarks/bench_windows_memory.py [--minutes 5 20]

For each length it writes a 16 kHz FLAC of that many minutes (LibriSpeech speaker 1688 from
``../shared/data/speech/long``, repeated) to a temporary folder, then runs
:func:`speakerembed.embed_windows` on it in a fresh interpreter and reports the peak resident
memory (``ru_maxrss``) and the number of windows. Files at least
``Pipeline.stream_min_duration_s`` (600 s by default; here 60 s, so both lengths stream) go
through :mod:`speakerembed.stages.longform`; the result itself grows by 1 KiB a window.

Last run (``--minutes 3 15``, CPU): ``benchmarks/results/windows_memory.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "speech" / "long" / "librispeech_1688_concat_16k.flac"

CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
from speakerembed import Pipeline, embed_windows
pipe = Pipeline(stream_min_duration_s=60.0)
w = embed_windows({path!r}, weights="resemblyzer", device="cpu", pipeline=pipe)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"windows": len(w), "peak_rss_mb": round(peak, 1)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 20.0])
    args = parser.parse_args()
    import soundfile as sf

    base, sr = sf.read(str(SOURCE), dtype="float32")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            n = int(minutes * 60 * sr)
            path = Path(tmp) / f"{minutes:g}min.flac"
            with sf.SoundFile(str(path), "w", sr, 1, format="FLAC") as f:
                done = 0
                while done < n:
                    part = base[: n - done]
                    f.write(part)
                    done += part.shape[0]
            out = subprocess.run(
                [sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path))],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["minutes"] = minutes
            row["file_mb_float32_in_memory"] = round(n * 4 / 2**20, 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
