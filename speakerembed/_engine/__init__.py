"""The execution engine behind :class:`~speakerembed.SpeakerEmbedder` (internal).

- :mod:`~speakerembed._engine.preparation`: the :class:`~speakerembed._engine.preparation.Preparer`,
  which runs the stages (load, resample, trim or VAD, mel, or the long-file stream) on one input.
- :mod:`~speakerembed._engine.packing`: packing prepared windows into encoder batches (pure).
- :mod:`~speakerembed._engine.encoding`: encoding the batches and consolidating each input.
- :mod:`~speakerembed._engine.schedule`: :func:`~speakerembed._engine.schedule.plan`, the one
  rule for threads, streams, bursts and prefetch, and the usable core count.
- :mod:`~speakerembed._engine.streams`: the CPU encoder run as one-thread streams.
- :mod:`~speakerembed._engine.prefetch`: preparing beside the encoder (prefetch, bursts).
- :mod:`~speakerembed._engine.workers`: encoder processes x threads for corpus jobs.
- :mod:`~speakerembed._engine.recorder`: the hooks an embedder reports its measurements to.

Nothing here is public API; the names may change between releases.
"""

__all__: list[str] = []
