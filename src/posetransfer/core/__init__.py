"""The bottom layer: files, devices, precisions and log noise, used by every other layer."""

__version__ = "0.1.0"
