"""The order plot (benchmarks/families/order.py): titles inside the figure, every EER bar labelled."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _order_module():  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib", reason="the order plot needs matplotlib (the bench group)")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.families import order

    return order


def _entry(eer_libri: float, eer_arctic: float) -> dict[str, object]:
    stages = {"resample": 0.05, "trim": 0.01, "mel": 0.03}
    one = {"stages": stages, "audio_s": 447.0, "eer": {"librispeech": eer_libri, "arctic": eer_arctic}}
    return {"resample_trim": one, "trim_resample": one, "min_cosine": 0.99961234}


def test_titles_fit_and_zero_bars_are_labelled(tmp_path: Path) -> None:
    order = _order_module()
    data = {"44100": _entry(1.19, 0.0), "48000": _entry(1.19, 0.0)}
    fig = order.plot(data, tmp_path / "order.png")
    assert (tmp_path / "order.png").stat().st_size > 10_000
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    page = fig.bbox
    for ax in fig.axes:
        box = ax.title.get_window_extent(renderer)
        assert box.x0 >= page.x0 - 1, f"title {ax.title.get_text()!r} is clipped on the left"
        assert box.x1 <= page.x1 + 1, f"title {ax.title.get_text()!r} is clipped on the right"
        assert box.y1 <= page.y1 + 1
    eer_axis = fig.axes[1]
    labels = [t.get_text() for t in eer_axis.texts]
    bars = [p for c in eer_axis.containers for p in c]
    assert len(labels) == len(bars) == 8  # 2 rates x 2 trials x 2 orders, each labelled
    zero_bars = [p for p in bars if p.get_height() == 0]
    assert len(zero_bars) == 4
    assert labels.count("0.0") == 4
    assert "0.9996" in eer_axis.get_title()
