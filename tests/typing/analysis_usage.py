"""The analysis API as users call it; checked by mypy (strict), not run."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from speakerembed import (
    CleanReport,
    Pipeline,
    WindowedEmbeddings,
    clean_dataset,
    embed_windows,
    find_outliers,
)


def windows(path: str) -> npt.NDArray[np.float32]:
    result: WindowedEmbeddings = embed_windows(path, weights="resemblyzer", pipeline=Pipeline(vad="silero"))
    start: npt.NDArray[np.float64] = result.start_s
    del start
    return result.similarity_to_previous()


def clean(folder: str, rows: npt.NDArray[np.float32], speakers: list[str]) -> int:
    report: CleanReport = clean_dataset(folder, weights="resemblyzer", outlier_threshold=0.7)
    again = find_outliers(rows, speakers, duplicate_threshold=0.98)
    return int(report.flagged.sum()) + len(again)
