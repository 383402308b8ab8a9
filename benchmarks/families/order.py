"""Order: resample then trim, against trim then resample — time per stage, and EER.

Usage: ``python -m benchmarks.families.order [--runs 3] [--quick]``.

At 44.1 and 48 kHz, for each order: the preprocessing stages timed alone over the 60
LibriSpeech utterances (resampled to the rate with libsoxr HQ), the EER of same- against
different-speaker trials on LibriSpeech (6 speakers) and CMU ARCTIC (2 speakers), and the
worst cosine between the two orders. Draws ``docs/_static/order.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["eer", "plot", "run", "worker_order"]

ORDER_PNG = h.ROOT / "docs" / "_static" / "order.png"
ORDERS = ("resample_trim", "trim_resample")


def worker_order(cfg: dict[str, Any]) -> dict[str, Any]:
    """Stage times and embeddings for one order at one rate."""
    import numpy as np
    import torch

    from speakerembed import Pipeline, SpeakerEmbedder
    from speakerembed.stages.mel import melspectrogram
    from speakerembed.stages.resample import resample
    from speakerembed.stages.trim import trim_silence

    rate, order = int(cfg["rate"]), cfg["order"]
    pipe = Pipeline(order=order)
    libri = sorted((h.SPEECH / "librispeech").glob("*/*.flac"))
    arctic = sorted((h.SPEECH / "arctic").glob("*.wav"))
    wavs, awavs = h.load_set(libri, rate), h.load_set(arctic, rate)
    stages = dict.fromkeys(("resample", "trim", "mel"), 0.0)
    runs = int(cfg["runs"])
    for _ in range(runs):
        for w in wavs:
            x, sr = w, rate
            for step in ("resample", "trim") if order == "resample_trim" else ("trim", "resample"):
                t0 = time.perf_counter()
                if step == "resample":
                    x, sr = resample(x, sr, 16_000, pipe.resampler), 16_000
                else:
                    frame, hop = pipe.trim_frames_at(sr)
                    x, _ = trim_silence(x, pipe.top_db or 20, frame, hop)
                stages[step] += time.perf_counter() - t0
            t0 = time.perf_counter()
            with torch.inference_mode():
                melspectrogram(torch.from_numpy(np.ascontiguousarray(x)))
            stages["mel"] += time.perf_counter() - t0
    emb = SpeakerEmbedder("resemblyzer", device="cpu", pipeline=pipe)
    return {
        "stages": {k: v / runs for k, v in stages.items()},
        "audio_s": sum(w.shape[0] for w in wavs) / rate,
        "embeddings": emb.embed_utterances(wavs, sample_rate=rate).tolist(),
        "labels": [f.parent.name for f in libri],
        "arctic_embeddings": emb.embed_utterances(awavs, sample_rate=rate).tolist(),
        "arctic_labels": [f.name.split("_")[3] for f in arctic],
    }


def eer(embeddings: list[list[float]], labels: list[str]) -> float:
    """Equal error rate (%) of all pairs: same speaker against different speakers."""
    import numpy as np

    e = np.asarray(embeddings)
    iu = np.triu_indices(len(labels), 1)
    scores = (e @ e.T)[iu]
    lab = np.asarray(labels)
    target = (lab[:, None] == lab[None, :])[iu]
    best, out = 2.0, 1.0
    for thr in np.unique(scores):
        far = float(np.mean(scores[~target] >= thr))
        frr = float(np.mean(scores[target] < thr))
        if abs(far - frr) < best:
            best, out = abs(far - frr), (far + frr) / 2
    return 100.0 * out


def plot(order: dict[str, Any], path: Path = ORDER_PNG) -> Any:
    """Stage times (left) and EER (right) for each order; every bar is labelled, zeros too.

    Returns the (closed) matplotlib figure, or None when no rate was measured.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r for r in order if "error" not in order[r]]
    if not rates:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    width = 0.38
    colours = {"resample": "#4c72b0", "trim": "#dd8452", "mel": "#55a868"}
    for k, o in enumerate(ORDERS):
        bottom = [0.0] * len(rates)
        for s, colour in colours.items():
            vals = [1000 * order[r][o]["stages"][s] for r in rates]
            axes[0].bar(
                [i + (k - 0.5) * width for i in range(len(rates))],
                vals,
                width,
                bottom=bottom,
                color=colour,
                edgecolor="black",
                hatch="" if k == 0 else "//",
                label=s if k == 0 else None,
            )
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        for i, total in enumerate(bottom):
            axes[0].annotate(
                f"{total:.0f} ms",
                (i + (k - 0.5) * width, total),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
    axes[0].set_xticks(range(len(rates)), [f"{int(r) / 1000:g} kHz" for r in rates])
    audio_s = order[rates[0]][ORDERS[0]]["audio_s"]
    axes[0].set_ylabel(f"ms for {audio_s:.0f} s of speech")
    axes[0].set_title(
        "Preprocessing time by order\nplain: resample then trim; hatched: trim then resample", fontsize=10
    )
    axes[0].set_ylim(0, max(max(sum(order[r][o]["stages"].values()) for o in ORDERS) for r in rates) * 1400)
    axes[0].legend(fontsize=8, loc="upper right", title="stage", title_fontsize=8)
    labels, eer_rt, eer_tr = [], [], []
    for r in rates:
        for trial in ("librispeech", "arctic"):
            labels.append(f"{int(r) / 1000:g} kHz\n{trial}")
            eer_rt.append(order[r]["resample_trim"]["eer"][trial])
            eer_tr.append(order[r]["trim_resample"]["eer"][trial])
    xs = list(range(len(labels)))
    for vals, shift, name, colour in (
        (eer_rt, -width / 2, "resample then trim", "#4c72b0"),
        (eer_tr, width / 2, "trim then resample", "#dd8452"),
    ):
        bars = axes[1].bar([x + shift for x in xs], vals, width, label=name, color=colour, edgecolor="black")
        # A zero-height bar is invisible: its label says it is there, and that it is 0.
        axes[1].bar_label(bars, labels=[f"{v:.1f}" for v in vals], fontsize=8, padding=2)
    axes[1].set_xticks(xs, labels, fontsize=8)
    axes[1].set_ylabel("EER (%)")
    axes[1].set_ylim(0, max([*eer_rt, *eer_tr, 1.0]) * 1.3)
    cos = ", ".join(f"{int(r) / 1000:g} kHz {order[r]['min_cosine']:.4f}" for r in rates)
    axes[1].set_title(f"EER by order (every bar labelled)\nworst cosine between orders: {cos}", fontsize=10)
    axes[1].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)
    return fig


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure both orders at 44.1 and 48 kHz and draw the plot."""
    import numpy as np

    runs = opts.runs or (1 if opts.quick else 3)
    machine = h.machine_info(opts.threads)
    figures: list[h.Figure] = []
    order: dict[str, Any] = {}
    for rate in (44_100, 48_000):
        by_order = {
            o: h.run_worker(
                "benchmarks.families.order:worker_order",
                {"rate": rate, "order": o, "runs": runs},
                threads=opts.threads,
            )
            for o in ORDERS
        }
        if any("error" in r for r in by_order.values()):
            order[str(rate)] = {"error": next(r["error"] for r in by_order.values() if "error" in r)}
            continue
        entry: dict[str, Any] = {}
        for o, r in by_order.items():
            entry[o] = {
                "stages": r["stages"],
                "audio_s": r["audio_s"],
                "eer": {
                    "librispeech": eer(r["embeddings"], r["labels"]),
                    "arctic": eer(r["arctic_embeddings"], r["arctic_labels"]),
                },
            }
        a, b = by_order["resample_trim"], by_order["trim_resample"]
        entry["min_cosine"] = float(
            min(
                np.min(np.sum(np.asarray(a["embeddings"]) * np.asarray(b["embeddings"]), axis=1)),
                np.min(
                    np.sum(np.asarray(a["arctic_embeddings"]) * np.asarray(b["arctic_embeddings"]), axis=1)
                ),
            )
        )
        order[str(rate)] = entry
        rt, tr = (sum(entry[o]["stages"].values()) for o in ORDERS)
        figures.append(
            h.Figure(
                f"preprocessing, {rate / 1000:g} kHz: trim then resample against resample then trim",
                f"{1000 * tr:.0f} ms against {1000 * rt:.0f} ms ({tr / rt:.2f}x)",
                value=tr / rt,
            )
        )
        figures.append(
            h.Figure(
                f"EER, {rate / 1000:g} kHz, LibriSpeech / ARCTIC: resample then trim; trim then resample",
                "{:.1f} / {:.1f} %; {:.1f} / {:.1f} %".format(
                    entry["resample_trim"]["eer"]["librispeech"],
                    entry["resample_trim"]["eer"]["arctic"],
                    entry["trim_resample"]["eer"]["librispeech"],
                    entry["trim_resample"]["eer"]["arctic"],
                ),
            )
        )
        figures.append(
            h.Figure(f"worst cosine between the orders, {rate / 1000:g} kHz", f"{entry['min_cosine']:.5f}")
        )
    plot(order)
    return h.FamilyResult("order", figures, {"order": order}, machine, [f"Stage times: mean of {runs} runs."])


if __name__ == "__main__":
    sys.exit(h.family_main("order", run, doc=__doc__))
