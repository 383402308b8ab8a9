"""The corpus the corpus benchmarks run on, built one way (``bench_corpus.py`` and ``bench_ray.py``).

:func:`build_corpus` writes cuts of 2 to 5 s of the shared speech (``../shared/data/speech``, or
``SPEAKEREMBED_SPEECH_DIR``) into a folder tree of sets and speakers, in four formats and rates,
from a fixed seed: the same files for every run and every engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("SPEAKEREMBED_SPEECH_DIR", ROOT.parent / "shared" / "data" / "speech"))
FORMATS = (
    ("wav", 16000, "PCM_16"),
    ("flac", 22050, "PCM_16"),
    ("ogg", 44100, "VORBIS"),
    ("wav", 48000, "FLOAT"),
)


def _sources() -> list[Path]:
    found: list[Path] = []
    for sub in ("librispeech", "arctic", "vctk48k", "ljspeech"):
        folder = SPEECH / sub
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    if not found:
        raise SystemExit(f"no speech under {SPEECH}; set SPEAKEREMBED_SPEECH_DIR")
    return found


def build_corpus(folder: Path, n_files: int, seed: int = 0) -> float:
    """Write ``n_files`` cuts of the shared speech into ``folder``; returns their seconds of audio."""
    import numpy as np
    import soundfile as sf
    import soxr

    rng = np.random.default_rng(seed)
    sources = _sources()
    cache: dict[Path, tuple[Any, int]] = {}
    total = 0.0
    for i in range(n_files):
        src = sources[i % len(sources)]
        if src not in cache:
            data, sr = sf.read(src, dtype="float32", always_2d=True)
            cache[src] = (data.mean(axis=1), sr)
        wav, sr = cache[src]
        length = min(len(wav), int(sr * rng.uniform(2.0, 5.0)))
        start = int(rng.integers(0, max(1, len(wav) - length)))
        cut = wav[start : start + length]
        ext, rate, subtype = FORMATS[i % len(FORMATS)]
        if rate != sr:
            cut = soxr.resample(cut, sr, rate).astype(np.float32)
        out = folder / f"set{i % 7}" / f"spk{i % 13}" / f"utt{i:05d}.{ext}"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, cut, rate, subtype=subtype)
        total += len(cut) / rate
    return total
