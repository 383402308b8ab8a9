"""Speaker similarity of TTS output to its voice prompt (``speakerembed sim-eval``).

The inputs are Seed-TTS-eval's ``meta.lst`` and a folder of generated audio, or a CSV of
(generated, reference) pairs. Each pair's similarity is the cosine of the two utterance
embeddings; the summary is their mean, standard deviation and count, as Seed-TTS-eval and F5-TTS
report "SIM".

.. important::

   These similarities come from **Chatterbox's voice encoder** (a 3-layer LSTM over 40-band mel
   spectrograms, 256-d embeddings), with the weights named in the summary. Seed-TTS-eval uses a
   **WavLM-large + ECAPA-TDNN** speaker model. The two scales differ: a number from one encoder
   cannot be compared with a number from another, nor with numbers from other weights.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._engine.log_summary import FIRST_LOGGED as _FIRST_LOGGED
from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder

__all__ = [
    "ENCODER_NOTE",
    "SimilarityPair",
    "TTSSimilarityReport",
    "find_generated",
    "read_pairs",
    "tts_similarity",
]

logger = logging.getLogger("speakerembed")

#: The sentence every summary carries, so that nobody compares numbers across encoders by mistake.
ENCODER_NOTE = (
    "similarities from Chatterbox's voice encoder (3-layer LSTM, 256-d), not the WavLM-TDNN "
    "speaker model of Seed-TTS-eval; numbers are comparable only with the same encoder and weights"
)


@dataclasses.dataclass(frozen=True)
class SimilarityPair:
    """One generated file and its reference, with their similarity.

    Attributes
    ----------
    utt : str
        The utterance id (from ``meta.lst``, or the generated file's stem).
    generated : str
        The generated audio's path.
    reference : str
        The reference (prompt) audio's path.
    similarity : float or None
        The cosine of the two embeddings; ``None`` if either file failed.
    error : str or None
        Why it failed.
    """

    utt: str
    generated: str
    reference: str
    similarity: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON line for this pair."""
        out: dict[str, Any] = {
            "utt": self.utt,
            "similarity": self.similarity,
            "generated": self.generated,
            "reference": self.reference,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclasses.dataclass(frozen=True)
class TTSSimilarityReport:
    """What :func:`tts_similarity` found.

    Attributes
    ----------
    pairs : tuple of SimilarityPair
        Every pair, in input order; failed ones have ``similarity=None`` and an ``error``.
    weights : str
        The encoder weights (``name@sha256``).
    """

    pairs: tuple[SimilarityPair, ...]
    weights: str

    @property
    def similarities(self) -> list[float]:
        """The similarities of the pairs that worked."""
        return [p.similarity for p in self.pairs if p.similarity is not None]

    @property
    def failures(self) -> list[SimilarityPair]:
        """The pairs that failed."""
        return [p for p in self.pairs if p.similarity is None]

    def summary(self) -> dict[str, Any]:
        """Mean, standard deviation (population), n, failures, and which encoder and weights."""
        sims = np.asarray(self.similarities, dtype=np.float64)
        return {
            "mean": float(sims.mean()) if sims.size else None,
            "std": float(sims.std()) if sims.size else None,
            "n": int(sims.size),
            "n_failed": len(self.failures),
            "failures": [{"utt": p.utt, "error": p.error} for p in self.failures],
            "encoder": "chatterbox-voice-encoder (3-layer LSTM, 256-d)",
            "weights": self.weights,
            "note": ENCODER_NOTE,
        }


def _normal_ext(ext: str) -> str:
    ext = ext.strip().lower()
    if not ext or ext in (".", "*") or "/" in ext or os.sep in ext:
        raise ConfigError(f"ext={ext!r} is not a file extension; pass one such as 'flac' or '.wav'")
    return ext if ext.startswith(".") else f".{ext}"


def find_generated(
    gen_dir: str | os.PathLike[str], utts: Sequence[str], ext: str | None = None
) -> dict[str, tuple[str, str | None]]:
    """Find each utterance's generated file in ``gen_dir``: ``{utt: (path, error or None)}``.

    With ``ext``, the file is ``gen_dir/<utt><ext>``. Without it, ``gen_dir/<utt>.<e>`` for any
    audio extension ``e`` the loader reads (:data:`speakerembed.corpus.sources.AUDIO_EXTENSIONS`,
    any case). A missing file, or two candidates (``u1.wav`` and ``u1.flac``), is an error that
    names the paths looked for.

    Parameters
    ----------
    gen_dir : str or os.PathLike
        The folder of generated audio.
    utts : sequence of str
        The utterance ids.
    ext : str or None
        One extension to use (``"flac"`` or ``".flac"``), or None for any audio extension.

    Returns
    -------
    dict of str to (str, str or None)
        The path (the one looked for when there is none) and, when it cannot be used, why.
    """
    from ..corpus.sources import AUDIO_EXTENSIONS

    gen = Path(gen_dir)
    out: dict[str, tuple[str, str | None]] = {}
    if ext is not None:
        suffix = _normal_ext(ext)
        for utt in utts:
            path = str(gen / f"{utt}{suffix}")
            missing = None if os.path.isfile(path) else f"generated: no such file {path} (by ext=EXT)"
            out[utt] = (path, missing)
        return out
    by_stem: dict[str, list[str]] = {}
    with os.scandir(gen) as entries:  # one listing, however many utterances
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in AUDIO_EXTENSIONS and entry.is_file():
                by_stem.setdefault(stem, []).append(entry.name)
    for utt in utts:
        names = sorted(by_stem.get(utt, []))
        if len(names) == 1:
            out[utt] = (str(gen / names[0]), None)
        elif not names:
            out[utt] = (
                str(gen / f"{utt}.wav"),
                f"generated: no such file {gen / utt}.<ext> (looked for .wav, .flac, .mp3 and the other "
                "audio extensions); check GEN_DIR, or pass ext=EXT for another extension",
            )
        else:
            out[utt] = (
                str(gen / names[0]),
                f"generated: {len(names)} files for {utt!r} in {gen} ({', '.join(names)}); pass "
                "ext=EXT to choose one",
            )
    return out


def read_pairs(
    meta: str | os.PathLike[str], gen_dir: str | os.PathLike[str] | None = None, *, ext: str | None = None
) -> list[SimilarityPair]:
    """Read the pairs to score from a Seed-TTS-eval ``meta.lst`` or a CSV.

    * ``meta.lst`` (any suffix but ``.csv``): ``utt|prompt_text|prompt_wav|infer_text[|gt_wav]``
      a line; the reference is ``prompt_wav``, relative to the list's folder, and the generated
      file is ``gen_dir/<utt>.<ext>``, any audio extension the loader reads unless ``ext`` is
      given (:func:`find_generated`). A pair whose generated file is missing carries its error.
    * ``.csv``: columns ``generated,reference`` (a header row naming them, optionally with an
      ``utt`` column, or no header and two columns); relative paths are relative to the CSV's
      folder, and ``gen_dir`` is not used. A UTF-8 byte order mark is allowed.

    Parameters
    ----------
    meta : str or os.PathLike
        The list.
    gen_dir : str or os.PathLike, optional
        The folder of generated audio (required for ``meta.lst``).
    ext : str or None
        The generated files' extension (``"flac"``); by default any audio extension.

    Returns
    -------
    list of SimilarityPair
        Unscored pairs with resolved paths; those whose generated file was not found have an
        ``error`` that names the path looked for.

    Raises
    ------
    ConfigError
        For an unreadable list, a malformed line (naming ``file:line``), or a missing ``gen_dir``.
    """
    path = Path(meta)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark is not the header's
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the list ({exc})") from None
    base = path.resolve().parent

    def resolve(folder: Path, name: str) -> str:
        return name if os.path.isabs(name) else str(folder / name)

    pairs: list[SimilarityPair] = []
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
        header = [c.strip().lower() for c in rows[0]] if rows else []
        if {"generated", "reference"} <= set(header):
            gi, ri = header.index("generated"), header.index("reference")
            ui = header.index("utt") if "utt" in header else None
            body = list(enumerate(rows[1:], start=2))
        else:
            gi, ri, ui = 0, 1, None
            body = list(enumerate(rows, start=1))
        for number, row in body:
            if len(row) <= max(gi, ri, ui or 0):
                raise ConfigError(f"{path}:{number}: expected the columns generated,reference; got {row!r}")
            generated, reference = row[gi].strip(), row[ri].strip()
            if not generated or not reference:
                raise ConfigError(f"{path}:{number}: an empty path; every row needs generated and reference")
            utt = row[ui].strip() if ui is not None else Path(generated).stem
            pairs.append(SimilarityPair(utt, resolve(base, generated), resolve(base, reference)))
    else:
        if gen_dir is None:
            raise ConfigError(
                f"{path} is a meta.lst; pass gen_dir= (the folder of generated <utt>.wav files)"
            )
        gen = Path(gen_dir)
        if not gen.is_dir():
            raise ConfigError(f"gen_dir= {gen} is not a folder")
        listed: list[tuple[str, str]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("|")
            if len(fields) not in (4, 5) or not fields[0].strip() or not fields[2].strip():
                raise ConfigError(
                    f"{path}:{number}: expected 'utt|prompt_text|prompt_wav|infer_text[|gt_wav]', "
                    f"got {len(fields)} field(s)"
                )
            listed.append((fields[0].strip(), resolve(base, fields[2].strip())))
        found = find_generated(gen, [utt for utt, _ in listed], ext)
        for utt, reference in listed:
            generated, error = found[utt]
            pairs.append(SimilarityPair(utt, generated, reference, error=error))
    if not pairs:
        raise ConfigError(f"{path}: the list has no pairs")
    return pairs


def tts_similarity(
    meta: str | os.PathLike[str] | Sequence[tuple[str, str] | SimilarityPair],
    gen_dir: str | os.PathLike[str] | None = None,
    *,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | torch.device | None = None,
    pipeline: Pipeline | None = None,
    embedder: SpeakerEmbedder | None = None,
    ext: str | None = None,
) -> TTSSimilarityReport:
    """Speaker similarity of each generated file to its reference, as Seed-TTS-eval's SIM.

    Parameters
    ----------
    meta : path, or sequence of (generated, reference) path pairs or of SimilarityPair
        A Seed-TTS-eval ``meta.lst``, a CSV (see :func:`~speakerembed.analysis.sim_eval.read_pairs`), or
        the pairs themselves (what :func:`~speakerembed.analysis.sim_eval.read_pairs` returns, say).
    gen_dir : path, optional
        The folder of generated ``<utt>.<ext>`` files, for a ``meta.lst``.
    weights : str or os.PathLike
        The encoder weights; ignored when ``embedder`` is given.
    device : str or torch.device or None
        Where to run the encoder; ignored when ``embedder`` is given.
    pipeline : Pipeline, optional
        Preprocessing; the embedder's own by default.
    embedder : SpeakerEmbedder, optional
        An embedder to use instead of loading ``weights``.
    ext : str or None
        For a ``meta.lst``: the generated files' extension; by default any audio extension.

    Returns
    -------
    TTSSimilarityReport
        Every pair with its similarity (or its error); a file that is missing or unusable
        fails its pair only, and is logged once as ``skipping pair N (utt ...)``, N counting
        the pairs from 1.

    Raises
    ------
    ConfigError
        For a malformed list.

    Notes
    -----
    The numbers come from Chatterbox's voice encoder, not from the WavLM-TDNN model that
    Seed-TTS-eval uses; see :data:`~speakerembed.analysis.sim_eval.ENCODER_NOTE`.

    Examples
    --------
    >>> from speakerembed import tts_similarity
    >>> report = tts_similarity(
    ...     [("examples/audio/alice_1.wav", "examples/audio/alice_2.wav"),
    ...      ("examples/audio/bob_1.wav", "examples/audio/alice_2.wav")],
    ...     weights="resemblyzer", device="cpu")
    >>> sims = report.similarities
    >>> sims[0] > sims[1]
    True
    """
    if isinstance(meta, (str, os.PathLike)):
        pairs = read_pairs(meta, gen_dir, ext=ext)
    else:
        pairs = []
        for i, item in enumerate(meta):
            if isinstance(item, SimilarityPair):
                pairs.append(dataclasses.replace(item, similarity=None))
                continue
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ConfigError(f"meta= item {i} is {item!r}; pass (generated, reference) pairs")
            g, r = os.fspath(item[0]), os.fspath(item[1])
            pairs.append(SimilarityPair(Path(g).stem, str(g), str(r)))
        if not pairs:
            raise ConfigError("meta= is empty; pass a meta.lst, a CSV, or some pairs")

    from ._file_lists import embed_files, resolve_embedder

    model = resolve_embedder(embedder, weights, device)
    wanted = [f for p in pairs for f in ((p.reference,) if p.error else (p.generated, p.reference))]
    # The files' own "skipping input N" lines would count files, not pairs: say it per pair here.
    rows, failed = embed_files(model, wanted, pipeline, quiet=True)
    scored: list[SimilarityPair] = []
    shown = 0
    for number, p in enumerate(pairs, start=1):
        errors = [p.error] if p.error else []
        errors += [
            f"{side}: {failed[f]}"
            for side, f in (("generated", p.generated), ("reference", p.reference))
            if f in failed and not (side == "generated" and p.error)
        ]
        if errors:
            error = "; ".join(errors)
            scored.append(dataclasses.replace(p, error=error))
            shown += 1
            if shown <= _FIRST_LOGGED:
                logger.warning("skipping pair %d (utt %s): %s", number, p.utt, error)
            continue
        sim = float(np.dot(rows[p.generated].astype(np.float64), rows[p.reference].astype(np.float64)))
        scored.append(dataclasses.replace(p, similarity=sim if math.isfinite(sim) else None))
    if shown > _FIRST_LOGGED:
        logger.warning(
            "skipped %d more pair(s) not shown (%d in all); the report's failures list each",
            shown - _FIRST_LOGGED,
            shown,
        )
    return TTSSimilarityReport(tuple(scored), model.weights_info.short)
