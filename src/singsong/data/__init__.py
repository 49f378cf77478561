"""Data stages: corpora, splits, separation and clips."""
