"""singsong: listen to a singer, generate the band behind them."""

__version__ = "0.1.0"

SAMPLE_RATE = 16_000
"""The one sample rate inside the system (Hz); inputs are converted at the edges."""
