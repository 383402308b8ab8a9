"""The pipeline's stages, one module per step of the data's trip.

1. :mod:`~speakerembed.stages.load`: decode a file (or take an array or tensor), mix to mono.
2. :mod:`~speakerembed.stages.resample`: to the encoder's 16 kHz.
3. :mod:`~speakerembed.stages.trim` (energy trimming) or :mod:`~speakerembed.stages.vad`
   (Silero speech detection): keep the speech.
4. :mod:`~speakerembed.stages.mel`: 40-band power mel spectrogram.
5. :mod:`~speakerembed.stages.windows`: the partial windows of 160 frames (window arithmetic).
6. :mod:`~speakerembed.stages.encoder`: the 3-layer LSTM voice encoder, windows in, unit vectors out.
7. :mod:`~speakerembed.stages.consolidate`: one utterance embedding from its windows, one
   speaker embedding from its utterances.

:mod:`~speakerembed.stages.longform` runs steps 1 to 5 over a long file in blocks, so its
memory does not grow with its length. Each stage is a set of plain functions (with a stateful
object where a kernel or a model is cached); the engine (``speakerembed._engine``) runs them.
"""

__all__: list[str] = []
