"""Speaker verification over a trial list: scores, EER, minDCF (``speakerembed verify``).

A trial list names pairs of files, one pair a line, in either of the two common forms:

* VoxCeleb: ``1 enroll.wav test.wav`` (1 = same speaker, 0 = different);
* Kaldi / WeSpeaker: ``enroll.wav test.wav target`` (or ``nontarget``);
* or, unlabelled, just ``enroll.wav test.wav`` (scores only).

The form is detected from the first trial; every line must then follow it. Blank lines and lines
starting with ``#`` are skipped. Paths are relative to ``root`` (by default, the list's folder)
and may not contain spaces.

Each distinct file is embedded once (utterance embeddings, Chatterbox's ``as_spk=False``), and a
trial's score is the cosine of its two embeddings, optionally AS-normalised against a cohort.
Files that cannot be embedded are reported; their trials are left out and counted.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder

__all__ = ["AUDIO_SUFFIXES", "Trial", "VerificationReport", "read_trials", "verify_trials"]

#: The suffixes counted as audio when a cohort is given as a folder.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
#: The p_target values of the minDCF in every report.
P_TARGETS = (0.01, 0.05)
_LABEL_WORDS = {"target": True, "nontarget": False}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One verification trial.

    Attributes
    ----------
    enroll : str
        The enrolment file, as written in the list.
    test : str
        The test file, as written in the list.
    label : bool or None
        ``True`` for same speaker, ``False`` for different, ``None`` when the list has no labels.
    """

    enroll: str
    test: str
    label: bool | None = None


def read_trials(path: str | os.PathLike[str]) -> list[Trial]:
    r"""Read a trial list in VoxCeleb or Kaldi/WeSpeaker form (detected), or unlabelled pairs.

    Parameters
    ----------
    path : str or os.PathLike
        The trial list, a text file.

    Returns
    -------
    list of Trial
        In file order; file names as written (not resolved).

    Raises
    ------
    ConfigError
        For an unreadable or empty list, or a line that does not follow the list's form; the
        message names ``file:line``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from speakerembed.analysis.verify import read_trials
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "trials.txt").write_text("1 a.wav b.wav\n0 a.wav c.wav\n")
    >>> read_trials(folder / "trials.txt")[1]
    Trial(enroll='a.wav', test='c.wav', label=False)
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read the trial list ({exc})") from None
    trials: list[Trial] = []
    form: str | None = None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{name}:{number}"
        kind = _form_of(fields)
        if kind is None:
            raise ConfigError(
                f"{where}: cannot read {line.strip()!r} as a trial; use '1|0 enroll test' (VoxCeleb), "
                "'enroll test target|nontarget' (Kaldi) or 'enroll test'"
            )
        if form is None:
            form = kind
        elif kind != form:
            raise ConfigError(
                f"{where}: {line.strip()!r} is {_FORM_NAMES[kind]} trial but the list started in "
                f"{form} form; "
                "use one form in a list"
            )
        if kind == "voxceleb":
            trials.append(Trial(fields[1], fields[2], fields[0] == "1"))
        elif kind == "kaldi":
            trials.append(Trial(fields[0], fields[1], _LABEL_WORDS[fields[2].lower()]))
        else:
            trials.append(Trial(fields[0], fields[1], None))
    if not trials:
        raise ConfigError(f"{name}: the trial list has no trials")
    return trials


_FORM_NAMES = {"voxceleb": "a voxceleb", "kaldi": "a kaldi", "unlabelled": "an unlabelled"}


def _form_of(fields: list[str]) -> str | None:
    if len(fields) == 2:
        return "unlabelled"
    if len(fields) != 3:
        return None
    if fields[2].lower() in _LABEL_WORDS:
        return "kaldi"
    if fields[0] in ("0", "1"):
        return "voxceleb"
    return None


@dataclasses.dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify_trials` found.

    Attributes
    ----------
    trials : tuple of Trial
        The trials that were scored (those whose two files were embedded).
    scores : numpy.ndarray, shape (n_scored,), float64
        The score of each of them: cosine, or AS-normalised cosine with a cohort.
    eer : float or None
        Equal error rate, a fraction; ``None`` without both kinds of labelled trial.
    eer_threshold : float or None
        The score at the EER; accept at or above it.
    min_dcf : dict of float to (float, float)
        For p_target 0.01 and 0.05: (minimum normalised DCF, its threshold). Empty without labels.
    n_target, n_nontarget : int
        Scored same-speaker and different-speaker trials.
    n_excluded : int
        Trials left out because one of their files failed.
    failed_files : dict of str to str
        Each file that could not be embedded, and why.
    weights : str
        The weights that made the embeddings (``name@sha256``); scores from different weights
        are not comparable.
    score_kind : str
        ``"cosine"``, or ``"as-norm(top_n=N)"``.
    """

    trials: tuple[Trial, ...]
    scores: npt.NDArray[np.float64]
    eer: float | None
    eer_threshold: float | None
    min_dcf: dict[float, tuple[float, float]]
    n_target: int
    n_nontarget: int
    n_excluded: int
    failed_files: dict[str, str]
    weights: str
    score_kind: str = "cosine"

    @property
    def labels(self) -> npt.NDArray[np.bool_] | None:
        """The labels of the scored trials, shape (n_scored,), bool; ``None`` when unlabelled."""
        if not self.trials or self.trials[0].label is None:
            return None
        return np.array([bool(t.label) for t in self.trials], dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (no per-trial scores; write those with :meth:`write_scores`)."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "eer": num(self.eer),
            "eer_threshold": num(self.eer_threshold),
            "min_dcf": {
                f"{p:g}": {"value": num(v), "threshold": num(t)} for p, (v, t) in self.min_dcf.items()
            },
            "n_trials": len(self.trials),
            "n_target": self.n_target,
            "n_nontarget": self.n_nontarget,
            "n_excluded": self.n_excluded,
            "n_failed": len(self.failed_files),
            "failed_files": [{"path": p, "error": e} for p, e in self.failed_files.items()],
            "score": self.score_kind,
            "weights": self.weights,
        }

    def score_lines(self) -> list[str]:
        """One line per scored trial: ``enroll test score [target|nontarget]`` (WeSpeaker's form)."""
        lines = []
        for trial, score in zip(self.trials, self.scores, strict=True):
            tail = "" if trial.label is None else (" target" if trial.label else " nontarget")
            lines.append(f"{trial.enroll} {trial.test} {score:.6f}{tail}")
        return lines

    def write_scores(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`score_lines` to a text file."""
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in self.score_lines())


def _cohort_files(cohort: Iterable[str | os.PathLike[str]]) -> list[str]:
    files: list[str] = []
    for item in cohort:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise ConfigError(f"cohort= folder {p} has no audio files ({', '.join(AUDIO_SUFFIXES)})")
            files.extend(found)
        elif p.is_file():
            files.append(str(p))
        else:
            raise ConfigError(f"cohort= {p} is neither a file nor a folder")
    return files


def verify_trials(
    trials: str | os.PathLike[str] | Sequence[Trial | tuple[str, str] | tuple[str, str, bool]],
    *,
    root: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | torch.device | None = None,
    pipeline: Pipeline | None = None,
    embedder: SpeakerEmbedder | None = None,
    cohort: Sequence[str | os.PathLike[str]] | None = None,
    top_n: int = 300,
) -> VerificationReport:
    """Score a list of verification trials, and compute EER and minDCF where they are labelled.

    Parameters
    ----------
    trials : path, or sequence of Trial or (enroll, test[, label]) tuples
        A trial list file (see :func:`~speakerembed.analysis.verify.read_trials`), or the trials themselves.
    root : path, optional
        The folder the trial paths are relative to; by default the trial list's folder (or
        the working directory for a sequence). Absolute paths are used as they are.
    weights : str or os.PathLike
        The encoder weights (see :func:`~speakerembed.embed_utterances`); ignored when
        ``embedder`` is given.
    device : str or torch.device or None
        Where to run the encoder; ignored when ``embedder`` is given.
    pipeline : Pipeline, optional
        Preprocessing; the embedder's own by default.
    embedder : SpeakerEmbedder, optional
        An embedder to use instead of loading ``weights``.
    cohort : sequence of paths, optional
        Audio files or folders of speakers *not* in the trials. When given, scores are
        AS-normalised (:func:`~speakerembed.analysis.scoring.as_norm`) against their embeddings.
    top_n : int
        The number of closest cohort embeddings AS-norm uses for each side.

    Returns
    -------
    VerificationReport

    Raises
    ------
    ConfigError
        For a malformed trial list (naming ``file:line``), a bad ``root`` or ``cohort``.
    AudioError
        If no file at all could be embedded.

    Examples
    --------
    >>> from speakerembed import verify_trials
    >>> report = verify_trials(
    ...     [("alice_1.wav", "alice_2.wav", True), ("alice_1.wav", "bob_1.wav", False),
    ...      ("bob_1.wav", "bob_2.wav", True), ("bob_2.wav", "alice_2.wav", False)],
    ...     root="examples/audio", weights="resemblyzer", device="cpu")
    >>> report.eer, report.n_target, report.n_nontarget
    (0.0, 2, 2)
    """
    from ..errors import AudioError
    from .scoring import as_norm, eer, min_dcf

    if isinstance(trials, (str, os.PathLike)):
        listing = Path(trials)
        items = read_trials(listing)
        base = Path(root) if root is not None else listing.resolve().parent
    else:
        items = [_as_trial(t, i) for i, t in enumerate(trials)]
        if not items:
            raise ConfigError("trials= is empty; pass a trial list file or some trials")
        base = Path(root) if root is not None else Path.cwd()
        labelled = {t.label is not None for t in items}
        if len(labelled) > 1:
            raise ConfigError("trials= mixes labelled and unlabelled trials; label all or none")
    if not base.is_dir():
        raise ConfigError(f"root= {base} is not a folder")

    from ._file_lists import embed_files, resolve_embedder

    model = resolve_embedder(embedder, weights, device)

    def resolve(name: str) -> str:
        return name if os.path.isabs(name) else str(base / name)

    files = [resolve(f) for t in items for f in (t.enroll, t.test)]
    rows, failed = embed_files(model, files, pipeline)
    if not rows:
        first = next(iter(failed.items()), ("", "no files"))
        raise AudioError(f"no file of the trial list could be embedded; the first: {first[1]}")
    kept = [t for t in items if resolve(t.enroll) in rows and resolve(t.test) in rows]
    enroll = np.array([rows[resolve(t.enroll)] for t in kept], dtype=np.float64).reshape(len(kept), -1)
    test = np.array([rows[resolve(t.test)] for t in kept], dtype=np.float64).reshape(len(kept), -1)
    scores = np.einsum("ij,ij->i", enroll, test) if kept else np.zeros(0)
    kind = "cosine"
    if cohort is not None and kept:
        cohort_rows, cohort_failed = embed_files(model, _cohort_files(cohort), pipeline)
        failed.update({f"cohort {k}": v for k, v in cohort_failed.items()})
        if len(cohort_rows) < 2:
            raise AudioError("cohort= gave fewer than 2 usable files; AS-norm needs at least 2")
        scores = as_norm(scores, enroll, test, np.stack(list(cohort_rows.values())), top_n=top_n)
        kind = f"as-norm(top_n={min(top_n, len(cohort_rows))})"

    n_target = sum(1 for t in kept if t.label is True)
    n_nontarget = sum(1 for t in kept if t.label is False)
    eer_value = eer_threshold = None
    dcf: dict[float, tuple[float, float]] = {}
    if n_target and n_nontarget:
        labels = np.array([bool(t.label) for t in kept])
        eer_value, eer_threshold = eer(scores, labels)
        for p in P_TARGETS:
            dcf[p] = tuple(min_dcf(scores, labels, p_target=p))  # type: ignore[assignment]
    return VerificationReport(
        trials=tuple(kept),
        scores=np.asarray(scores, dtype=np.float64),
        eer=eer_value,
        eer_threshold=eer_threshold,
        min_dcf=dcf,
        n_target=n_target,
        n_nontarget=n_nontarget,
        n_excluded=len(items) - len(kept),
        failed_files=failed,
        weights=model.weights_info.short,
        score_kind=kind,
    )


def _label(value: object, index: int) -> bool:
    """True/False, 1/0, "1"/"0" or "target"/"nontarget"."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {**_LABEL_WORDS, "1": True, "0": False}:
        return {**_LABEL_WORDS, "1": True, "0": False}[value.strip().lower()]
    raise ConfigError(
        f"trials= item {index} has the label {value!r}; use True/False, 1/0 or 'target'/'nontarget'"
    )


def _as_trial(item: object, index: int) -> Trial:
    if isinstance(item, Trial):
        return item
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        enroll, test = os.fspath(item[0]), os.fspath(item[1])
        label = None if len(item) == 2 else _label(item[2], index)
        return Trial(str(enroll), str(test), label)
    raise ConfigError(
        f"trials= item {index} is {item!r}; pass Trial objects or (enroll, test[, label]) tuples"
    )
