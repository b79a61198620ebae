"""Log noise of C++ libraries that write straight to stderr (MediaPipe, TensorFlow Lite).

MediaPipe 0.10 logs through absl before anything calls ``absl::InitializeLog``, and in that
state absl writes every warning to file descriptor 2 and reads no setting: GLOG_minloglevel,
TF_CPP_MIN_LOG_LEVEL and absl's Python flags change nothing. Its lines (``W0000 ...
inference_feedback_manager.cc:114] ... Disabling support for feedback tensors``) come when a
graph first runs and when it first finds a person, so `filtered_stderr` holds back file
descriptor 2 around the calls into the library and writes back all but those lines.

Python's own warnings go through ``sys.stderr`` as usual: outside the block they are untouched,
and inside it they are held back with the rest and written back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

# absl / glog lines at INFO or WARNING level (errors pass), TF Lite's "INFO: Created TensorFlow
# Lite XNNPACK delegate for CPU." and absl's notice that it has not been initialised.
CPP_LOG_NOISE = re.compile(
    r"[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|INFO: "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
)

_lock = threading.Lock()
_depth = 0  # blocks open now, in any thread: the first redirects, the last restores
_saved: int | None = None
_capture: IO[bytes] | None = None


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[str] = CPP_LOG_NOISE) -> Iterator[None]:
    """Hold back what is written to file descriptor 2 in the block; write back all but noise.

    Catches output of C++ code, which Python's ``sys.stderr`` never sees. Lines that ``noise``
    matches at their start are dropped; the others (errors, Python warnings) are written to
    stderr when the block ends, so they are delayed, not lost. Blocks may nest and may run in
    several threads at once: stderr is restored when the last one ends.
    """
    global _depth, _saved, _capture
    with _lock:
        if _depth == 0:
            if sys.stderr is not None:
                sys.stderr.flush()
            try:
                _saved = os.dup(2)
            except OSError:  # no stderr at all: nothing to filter
                _saved = None
            if _saved is not None:
                _capture = tempfile.TemporaryFile()
                os.dup2(_capture.fileno(), 2)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None and _capture is not None:
                if sys.stderr is not None:
                    sys.stderr.flush()
                os.dup2(_saved, 2)
                os.close(_saved)
                _capture.seek(0)
                text = _capture.read().decode(errors="replace")
                _capture.close()
                _saved, _capture = None, None
                kept = [line for line in text.splitlines(True) if not noise.match(line)]
                if kept:
                    os.write(2, "".join(kept).encode())
