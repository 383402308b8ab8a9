"""ONNX: the exported models' fidelity to torch, and onnxruntime's CPU throughput beside torch's.

Usage: ``python -m benchmarks.families.onnx_export [--runs 5] [--quick] [--threads 2]`` (needs
``speakerembed[onnx]``).

On held-out-style real speech (LibriSpeech test-other, VCTK, LJ Speech, resampled to 16 kHz with
libsoxr HQ; inputs cut to 1-30 s):

* **fidelity**: the encoder's rows from onnxruntime against torch's for batches of 1 to 256
  windows (target: worst cosine ≥ 0.99999), and the waveform model's embedding against
  ``embed_utterances(..., pipeline=Pipeline(top_db=None))`` (target: ≥ 0.9999);
* **throughput**: the encoder alone (the same 256 windows, batches of 64) in torch and in
  onnxruntime's CPU execution provider, on ``--threads`` threads and on one; and audio to
  embedding (the waveform model, one clip a call, against ``embed_utterances`` on the same
  arrays) on ``--threads`` threads; each in x real time, timed in alternating rounds in one
  process. Reported, no target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _harness as h

__all__ = ["run"]

ENCODER_TARGET = 0.99999
WAVEFORM_TARGET = 0.9999
RATE = 16_000
BATCH = 64
#: Windows the encoder-alone throughput is timed on (in batches of BATCH).
ENCODER_WINDOWS = 256


def _cos(a: Any, b: Any) -> Any:
    import numpy as np

    a64, b64 = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Export both models, check them on real speech, and time onnxruntime beside torch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from speakerembed import Pipeline, SpeakerEmbedder, export_onnx
    from speakerembed.stages.mel import melspectrogram
    from speakerembed.stages.windows import partial_windows

    torch.set_num_threads(opts.threads)
    runs = opts.runs or (2 if opts.quick else 5)
    machine = h.machine_info(opts.threads)
    files = h.eval_files(12 if opts.quick else 60)
    wavs = [w[: 30 * RATE] for w in h.load_set(files, RATE) if w.size >= RATE]
    seconds = sum(w.size for w in wavs) / RATE
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    pipe = Pipeline(top_db=None)
    print(
        f"  onnx: exporting, then {len(wavs)} clips ({seconds:.0f} s of audio) ...",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        enc = export_onnx(Path(tmp) / "encoder.onnx", embedder=embedder)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        wav = export_onnx(Path(tmp) / "waveform.onnx", embedder=embedder, waveform=True)
        export_wave_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.intra_op_num_threads = opts.threads
        enc_s = ort.InferenceSession(str(enc.path), options, providers=["CPUExecutionProvider"])
        wav_s = ort.InferenceSession(str(wav.path), options, providers=["CPUExecutionProvider"])
        pipe_windows = [
            partial_windows(melspectrogram(torch.from_numpy(w)), pipe.frame_step, pipe.min_coverage)
            for w in wavs
        ]
        windows = torch.cat(pipe_windows)
        while windows.shape[0] < 256:  # batches up to 256 need that many windows (--quick)
            windows = torch.cat((windows, windows))
        with torch.inference_mode():
            ref_rows = embedder.encoder(windows).numpy()
        worst_enc = 1.0
        for b in (1, 2, 7, 64, 255, 256):
            for start in range(0, max(1, windows.shape[0] - b + 1), max(b, windows.shape[0] // 4)):
                got = enc_s.run(None, {"mels": windows[start : start + b].numpy()})[0]
                worst_enc = min(worst_enc, float(_cos(got, ref_rows[start : start + b]).min()))
        ref_utts = embedder.embed_utterances(wavs, sample_rate=RATE, pipeline=pipe)
        got_utts = np.stack([wav_s.run(None, {"waveform": w})[0] for w in wavs])
        worst_wav = float(_cos(got_utts, ref_utts).min())
        real = torch.cat(pipe_windows)  # the clips' own windows, for the throughput
        timed = real[: ENCODER_WINDOWS if not opts.quick else BATCH]
        chunks = [timed[i : i + BATCH] for i in range(0, timed.shape[0], BATCH)]
        chunks_np = [c.numpy() for c in chunks]
        options_1 = ort.SessionOptions()
        options_1.intra_op_num_threads = 1
        enc_1 = ort.InferenceSession(str(enc.path), options_1, providers=["CPUExecutionProvider"])

        def torch_encoder(threads: int) -> Any:
            def call() -> None:
                torch.set_num_threads(threads)
                try:
                    with torch.inference_mode():
                        for c in chunks:
                            embedder.encoder(c)
                finally:
                    torch.set_num_threads(opts.threads)

            return call

        def ort_encoder(session: Any) -> Any:
            def call() -> None:
                for c in chunks_np:
                    session.run(None, {"mels": c})

            return call

        def torch_pipeline() -> None:
            embedder.embed_utterances(wavs, sample_rate=RATE, pipeline=pipe)

        def ort_pipeline() -> None:
            for w in wavs:
                wav_s.run(None, {"waveform": w})

        times = h.rotate(
            {
                "torch encoder": torch_encoder(opts.threads),
                "onnxruntime encoder": ort_encoder(enc_s),
                "torch encoder, 1 thread": torch_encoder(1),
                "onnxruntime encoder, 1 thread": ort_encoder(enc_1),
                "torch embed_utterances": torch_pipeline,
                "onnxruntime waveform model": ort_pipeline,
            },
            runs,
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    lengths = [w.size / RATE for w in wavs]
    # The encoder's audio: each window stands for frame_step frames of 10 ms (its share of the clip).
    xrt = {k: seconds / v for k, v in med.items()}
    enc_seconds = seconds * timed.shape[0] / real.shape[0]  # the audio the timed windows stand for
    for k in med:
        if "encoder" in k:
            xrt[k] = enc_seconds / med[k]
    figures = [
        h.Figure(
            "encoder: worst cosine, onnxruntime vs torch (batches 1-256)",
            f"{worst_enc:.7f}",
            f"{real.shape[0]} real windows",
            f"≥ {ENCODER_TARGET}",
            h.check_ratio(worst_enc, ENCODER_TARGET),
            worst_enc,
        ),
        h.Figure(
            "waveform model: worst cosine vs embed_utterances(top_db=None)",
            f"{worst_wav:.7f}",
            f"{len(wavs)} clips of {min(lengths):.1f}-{max(lengths):.1f} s",
            f"≥ {WAVEFORM_TARGET}",
            h.check_ratio(worst_wav, WAVEFORM_TARGET),
            worst_wav,
        ),
        h.Figure(
            "encoder throughput, onnxruntime CPU",
            f"{xrt['onnxruntime encoder']:.0f}x real time",
            f"torch: {xrt['torch encoder']:.0f}x ({med['torch encoder'] / med['onnxruntime encoder']:.2f}x)",
            value=xrt["onnxruntime encoder"],
        ),
        h.Figure(
            "encoder throughput, onnxruntime CPU, 1 thread",
            f"{xrt['onnxruntime encoder, 1 thread']:.0f}x real time",
            f"torch, 1 thread: {xrt['torch encoder, 1 thread']:.0f}x "
            f"({med['torch encoder, 1 thread'] / med['onnxruntime encoder, 1 thread']:.2f}x)",
            value=xrt["onnxruntime encoder, 1 thread"],
        ),
        h.Figure(
            "audio to embedding, onnxruntime waveform model",
            f"{xrt['onnxruntime waveform model']:.0f}x real time",
            f"torch embed_utterances: {xrt['torch embed_utterances']:.0f}x "
            f"({med['torch embed_utterances'] / med['onnxruntime waveform model']:.2f}x)",
            value=xrt["onnxruntime waveform model"],
        ),
        h.Figure("export time, encoder (with its checks)", f"{export_s:.1f} s"),
        h.Figure("export time, waveform model (with its checks)", f"{export_wave_s:.1f} s"),
    ]
    notes = [
        f"onnxruntime {ort.__version__}, CPUExecutionProvider, {opts.threads} intra-op threads; "
        f"{len(wavs)} clips, {seconds:.0f} s of 16 kHz audio, {real.shape[0]} windows; "
        f"medians of {runs} alternating rounds. The encoder alone is timed on {timed.shape[0]} of "
        "the windows, and its x real time counts the audio those windows stand for."
    ]
    data = {"times": times, "median": med, "worst_encoder": worst_enc, "worst_waveform": worst_wav}
    return h.FamilyResult("onnx", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("onnx", run, doc=__doc__))
