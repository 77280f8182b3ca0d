"""batchtts: batch text-to-speech jobs for the Smallest AI Waves streaming API."""

__version__ = "0.1.0"
