"""Evaluation: Fréchet Audio Distance, musical agreement, the retrieval baseline, ``eval run``.

- :mod:`.embeddings`: the :class:`Embedding` interface and its backends (offline ``musicfeat``,
  VGGish and CLAP from local weights);
- :mod:`.fad`: the Fréchet distance and FAD between sets of audio;
- :mod:`.analysis`: key, tempo, beats, chroma, pitch salience, vocal f0;
- :mod:`.agreement`: vocal/instrumental fit metrics and the vocal-copy measure;
- :mod:`.baseline`: the paper's retrieval baseline;
- :mod:`.run` and :mod:`.report`: ``singsong eval run`` and its report.

Submodules import librosa/matplotlib/torch lazily; import what you need from them directly.
"""
