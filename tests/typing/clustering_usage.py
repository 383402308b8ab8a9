"""The clustering API as users call it; checked by mypy (strict), not run."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from speakerembed import SpeakerClusters, bcubed, cluster_corpus, cluster_speakers
from speakerembed.analysis.clustering import AverageLinkage, cluster_confidence


def cluster(rows: npt.NDArray[np.float32], speakers: list[str]) -> float:
    labels: npt.NDArray[np.int64] = cluster_speakers(rows, threshold=0.8, min_cluster_size=2)
    again = AverageLinkage(threshold=0.7, search="exact").fit_predict(rows)
    confidence: npt.NDArray[np.float64] = cluster_confidence(rows, again)
    score = bcubed(speakers, labels)
    return score.f1 + score.precision + float(confidence.mean())


def corpus(folder: str) -> int:
    result: SpeakerClusters = cluster_corpus(folder, threshold=None)
    result.write("clusters.parquet")
    result.write_kaldi("data/train")
    return int(result.sizes()["clusters"])
