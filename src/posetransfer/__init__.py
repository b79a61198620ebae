"""posetransfer: pose-guided person image generation (PATN / APATN)."""

__version__ = "0.1.0"
