"""Import of the authors' released PATN checkpoints (`latest_net_netG.pth`).

Their generator stores its layers under ``model.stream1_down`` (image encoder),
``model.stream2_down`` (pose encoder), ``model.att.<k>.conv_block_stream1/2`` (blocks) and
``model.stream1_up`` (decoder), with module indices that count pad, norm and ReLU layers. Our
`PATN` keeps the same layer lists, so the import renames prefixes and checks every tensor. It also
accepts checkpoints saved from DataParallel (``module.`` prefixes), old InstanceNorm checkpoints
carrying running statistics the model does not use, and models trained without dropout layers
(whose indices shift by one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from posetransfer.core.files import load_torch_file, torch_file_failure
from posetransfer.errors import InputError
from posetransfer.models.blocks import Norm
from posetransfer.models.patn import PATN

_PREFIXES = (
    (re.compile(r"^model\.stream1_down\."), "image_encoder."),
    (re.compile(r"^model\.stream2_down\."), "pose_encoder."),
    (re.compile(r"^model\.att\.(\d+)\.conv_block_stream1\."), r"blocks.\1.image_path."),
    (re.compile(r"^model\.att\.(\d+)\.conv_block_stream2\."), r"blocks.\1.pose_path."),
    (re.compile(r"^model\.stream1_up\."), "decoder."),
)
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _read_state_dict(path_or_state_dict: str | Path | Mapping) -> tuple[dict, str]:
    if isinstance(path_or_state_dict, Mapping):
        sd, origin = dict(path_or_state_dict), "the given state dict"
    else:
        path = Path(path_or_state_dict)
        origin = str(path)
        if not path.is_file():
            raise InputError(f"checkpoint not found: {path}")
        try:
            sd = load_torch_file(path, "PyTorch checkpoint")
        except InputError as e:
            # Reworded for the authors' files, where a whole pickled model is the usual mistake.
            refused, why = torch_file_failure(e)
            if refused is None:
                raise InputError(f"{path}: not a readable PyTorch checkpoint ({why})") from None
            raise InputError(
                f"{path}: holds a pickled module, not a state dict (it names the Python class "
                f"{refused}); load it in the authors' code and save model.state_dict()"
            ) from None
        if not isinstance(sd, Mapping):
            raise InputError(f"{path}: holds a {type(sd).__name__}, not a state dict of tensors")
    if isinstance(sd.get("state_dict"), Mapping):  # e.g. the reference fixtures
        sd = dict(sd["state_dict"])
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(f"{origin}: not a state dict of tensors")
    # DataParallel / DistributedDataParallel prefixes; a bare model without the "model." wrapper.
    sd = {re.sub(r"^(module\.)+", "", k): v for k, v in sd.items()}
    if not any(k.startswith("model.") for k in sd):
        sd = {"model." + k: v for k, v in sd.items()}
    if "model.stream1_down.1.weight" not in sd:
        raise InputError(
            f"{origin}: not an authors' PATN generator checkpoint "
            "(no 'model.stream1_down.1.weight'; is it a discriminator or another architecture?)"
        )
    return sd, origin


def convert_original_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the authors' keys to this project's PATN keys (no shape checks)."""
    no_dropout = any(re.search(r"conv_block_stream1\.5\.weight$", k) for k in sd)
    out = {}
    for key, value in sd.items():
        if no_dropout and ".att." in key:
            # Without the dropout layer, indices after the ReLU (3) shift down by one.
            key = re.sub(
                r"(conv_block_stream[12]\.)(\d+)(\.)",
                lambda m: m.group(1) + str(int(m.group(2)) + (int(m.group(2)) >= 4)) + m.group(3),
                key,
            )
        for pattern, repl in _PREFIXES:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            out[key] = value  # left as is: reported as unexpected when loading
    return out


def load_original_patn(path_or_state_dict: str | Path | Mapping, norm: Norm | None = None) -> PATN:
    """A PATN in eval mode holding the weights of an authors' checkpoint.

    Args:
        path_or_state_dict: a ``latest_net_netG.pth`` file or its loaded state dict.
        norm: "batch" (their Market-1501 model) or "instance" (DeepFashion); None reads it from
            the checkpoint (BatchNorm layers hold weights, InstanceNorm layers hold none).

    Returns:
        The model, with ngf, block count and downsampling read from the checkpoint.

    Raises:
        InputError: the file is missing, unreadable, of another architecture, or of the other norm.
    """
    sd, origin = _read_state_dict(path_or_state_dict)
    detected: Norm = "batch" if "model.stream1_down.2.weight" in sd else "instance"
    if norm is None:
        norm = detected
    elif norm != detected:
        raise InputError(
            f"{origin}: holds a PATN with {detected} norm, but norm={norm!r} was asked"
        )
    ngf = sd["model.stream1_down.1.weight"].shape[0]
    n_blocks = len({int(m.group(1)) for k in sd if (m := re.match(r"model\.att\.(\d+)\.", k))})
    n_down = (
        sum(
            1
            for k in sd
            if re.fullmatch(r"model\.stream1_down\.\d+\.weight", k) and sd[k].dim() == 4
        )
        - 1
    )
    sd = convert_original_state_dict(sd)
    if norm == "instance":  # old InstanceNorm layers kept running statistics; ours do not
        sd = {k: v for k, v in sd.items() if k.rsplit(".", 1)[-1] not in _RUNNING_STATS}
    model = PATN(norm=norm, ngf=ngf, n_blocks=max(n_blocks, 1), n_downsampling=max(n_down, 1))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
            if keys
        )
        raise InputError(
            f"{origin}: does not match a PATN (ngf {ngf}, {n_blocks} blocks): {details}"
        )
    model.load_state_dict(sd)
    return model.eval()
