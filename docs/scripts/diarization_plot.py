"""Draw docs/_static/diarization.png: a diarized simulated conversation above its reference.

Run from the project root (needs the shared speech beside the project, and matplotlib)::

    python docs/scripts/diarization_plot.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Diarize one simulated conversation and save the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from _conversations import build_conversation, speaker_pools

    from speakerembed import SpeakerEmbedder, diarize
    from speakerembed.analysis.scoring import der

    pools = speaker_pools(ROOT.parent / "shared" / "data" / "speech")
    names = sorted(pools)[:3]
    conv = build_conversation(pools, names, duration_s=75, seed=11, sample_rate=22050)
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    d = diarize(conv.wave, sample_rate=conv.sample_rate, embedder=embedder)
    r = der(conv.turns, d.turns)
    ref_labels = sorted({t[2] for t in conv.turns})

    def together(h: str, k: str) -> float:
        return sum(
            max(0.0, min(e, b) - max(s, a))
            for s, e, x in d.turns
            if x == h
            for a, b, y in conv.turns
            if y == k
        )

    # each found speaker in the colour of the reference speaker it overlaps most
    hyp_colour = {h: ref_labels.index(max(ref_labels, key=lambda k: together(h, k))) for h in d.speakers}
    fig, ax = plt.subplots(figsize=(10, 2.6), layout="constrained")
    colours = plt.get_cmap("tab10")
    for s, e, k in conv.turns:
        ax.broken_barh([(s, e - s)], (0.65, 0.7), color=colours(ref_labels.index(k)))
    for t in d.turns:
        ax.broken_barh([(t.start_s, t.end_s - t.start_s)], (-0.35, 0.7), color=colours(hyp_colour[t.speaker]))
    ax.set_yticks([0, 1], ["diarize()", "reference"])
    ax.set_xlabel("seconds")
    ax.set_xlim(0, conv.duration_s)
    ax.set_title(
        f"3 LibriSpeech speakers at 22.05 kHz; {len(d.speakers)} found; DER {r.der:.1%} "
        f"(missed {r.missed_s / r.total_s:.1%}, false alarm {r.false_alarm_s / r.total_s:.1%}, "
        f"confusion {r.confusion_s / r.total_s:.1%})",
        fontsize=9,
    )
    out = ROOT / "docs" / "_static" / "diarization.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
