"""Log noise of C++ libraries that write straight to stderr (MediaPipe, TensorFlow Lite).

MediaPipe 0.10 logs through absl before anything calls ``absl::InitializeLog``, and in that
state absl writes every warning to file descriptor 2 and reads no setting: GLOG_minloglevel,
TF_CPP_MIN_LOG_LEVEL and absl's Python flags change nothing. Its lines (``W0000 ...
inference_feedback_manager.cc:114] ... Disabling support for feedback tensors``) come when a
graph is built, when it first runs and when it first finds a person, and a tracking graph logs
from its own threads at any time. So `filtered_stderr` points file descriptor 2 at a pipe for
as long as the library is in use, and a thread passes on everything that comes through it,
straight away, except those lines.

Progress bars and Python's warnings go through the same pipe and reach the terminal as they are
written: a piece of a line is passed on at once unless it could be the start of a log line,
which is held until its line ends (absl writes a whole line in one call, so in practice only
the reading splits one).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator

# absl / glog lines at INFO or WARNING level (errors pass), TF Lite's "INFO: Created TensorFlow
# Lite XNNPACK delegate for CPU." and absl's notice that it has not been initialised.
CPP_LOG_NOISE = re.compile(
    r"[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|INFO: "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
)
# A piece of a line that may still grow into one of the above: held until its line ends.
_NOISE_START = re.compile(
    r"[IW]\d|[IW]$|I(N(F(O(:)?)?)?)?$|W(A(R(N(I(N(G(:)?)?)?)?)?)?)?$|INFO: |WARNING: "
)
_HOLD_SECONDS = 0.5  # a held piece that stays unfinished this long is passed on
_PIECE_END = re.compile(r"(?<=[\r\n])")  # splits after every line end, keeping it


class _Forwarder:
    """File descriptor 2 pointed at a pipe, and the thread that filters what comes through."""

    def __init__(self, noise: re.Pattern[str]) -> None:
        self.noise = noise
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.saved = os.dup(2)
        read, write = os.pipe()
        self.read = read
        self.thread = threading.Thread(target=self._run, name="posetransfer-stderr", daemon=True)
        self.thread.start()  # reading before fd 2 points at the pipe: nothing can be stranded
        try:
            os.dup2(write, 2)
        except BaseException:  # the reader ends when the last writer is closed
            os.close(write)
            os.close(self.saved)
            raise
        os.close(write)

    def _pass(self, data: str) -> None:
        try:
            os.write(self.saved, data.encode(errors="replace"))
        except OSError:  # the terminal went away: nothing to pass on to
            pass

    def _run(self) -> None:
        import select

        pending = ""
        held_since = 0.0
        while True:
            ready, _, _ = select.select([self.read], [], [], _HOLD_SECONDS)
            chunk = os.read(self.read, 65536) if ready else None
            if chunk == b"":  # every writer closed: the block ended
                break
            if chunk is not None:
                pending += self.decoder.decode(chunk)  # a character may span two reads
            # Whole lines ("\n") and progress-bar frames ("\r") go on unless they are noise;
            # the unfinished rest goes on too, unless it could still become a log line.
            *pieces, pending = _PIECE_END.split(pending)
            out = [piece for piece in pieces if not self.noise.match(piece)]
            now = time.monotonic()
            if pending and (
                not _NOISE_START.match(pending)
                or (held_since and now - held_since >= _HOLD_SECONDS)
            ):
                if not self.noise.match(pending):
                    out.append(pending)
                pending = ""
            held_since = (held_since or now) if pending else 0.0
            if out:
                self._pass("".join(out))
        if pending and not self.noise.match(pending):
            self._pass(pending)
        os.close(self.read)

    def close(self) -> None:
        if sys.stderr is not None:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
        os.dup2(self.saved, 2)  # closes the pipe's last writer (children may hold others)
        self.thread.join(timeout=2.0)
        if not self.thread.is_alive():  # else a child still writes: the thread keeps the fd
            os.close(self.saved)


_lock = threading.Lock()
_depth = 0  # blocks open now, in any thread: the first redirects, the last restores
_forwarder: _Forwarder | None = None


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[str] = CPP_LOG_NOISE) -> Iterator[None]:
    """Drop the C++ log lines written to file descriptor 2 in the block; pass on the rest.

    Catches output of C++ code, which Python's ``sys.stderr`` never sees. Lines that ``noise``
    matches at their start are dropped; everything else (errors, Python warnings, progress
    bars) is passed on as it comes. Blocks may nest and may run in several threads at once:
    stderr is restored when the last one ends. Without a file descriptor 2 nothing is done.
    """
    global _depth, _forwarder
    with _lock:
        if _depth == 0:
            if sys.stderr is not None:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
            try:
                _forwarder = _Forwarder(noise)
            except OSError:  # no stderr at all: nothing to filter
                _forwarder = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _forwarder is not None:
                _forwarder.close()
                _forwarder = None
