"""Building a training session: processes and devices, data, networks, losses and optimisers.

`build` returns a `Training`: everything one process trains with, and its position in the data
(step, epoch, batches of this epoch done). `batches` then yields the batches from that position.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset, Sampler

from posetransfer.config import Config
from posetransfer.core.device import resolve_device
from posetransfer.core.precision import check_precision, grad_scaler
from posetransfer.data.datasets import add_heatmaps, dataset_from_config
from posetransfer.errors import InputError, InputWarning
from posetransfer.models.discriminators import appearance_discriminator, shape_discriminator
from posetransfer.models.losses import GANLoss, GeneratorLoss, ImagePool
from posetransfer.models.registry import create_generator, list_generators


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across processes, that can start mid-epoch.

    DistributedSampler cannot resume inside an epoch; exact resumption needs that.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(n / world)

    def set_position(self, epoch: int, start: int) -> None:
        """Start the next iteration in ``epoch`` at this process's ``start``-th index."""
        self.epoch, self.start = epoch, start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: self.per_rank * self.world - self.n]  # pad to equal shards
        shard = order[self.rank :: self.world]
        return iter(shard[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


@dataclass
class Training:
    """One process's networks, optimisers, data and position in training."""

    cfg: Config
    rank: int
    world: int
    device: torch.device
    generator: nn.Module
    discs: dict[str, nn.Module]
    g_loss: GeneratorLoss
    gan: GANLoss
    pools: dict[str, ImagePool]
    opts: dict[str, torch.optim.Optimizer]
    scheds: dict[str, LambdaLR]
    train_set: Dataset
    sample_set: Dataset | None
    sampler: EpochSampler
    loader_gen: torch.Generator
    batch_per_rank: int
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    """Batches of the current epoch already trained on (by this process)."""
    precision: str = "fp32"
    """The precision the steps run at (``train.precision``, with "auto" resolved)."""
    scalers: dict[str, torch.amp.GradScaler] = field(default_factory=dict)
    """fp16's gradient scaler of each optimiser (none for fp32 and bf16)."""
    ddp_generator: nn.Module | None = field(default=None, repr=False)
    """The generator as trained: wrapped in DistributedDataParallel under torchrun."""


def setup_processes(cfg: Config) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun, seeds RNGs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.train.batch_size % world:
        raise InputError(
            f"train.batch_size={cfg.train.batch_size}: not divisible by the {world} training "
            "processes (each takes an equal share of every batch)",
            arg="train.batch_size",
        )
    device = resolve_device(cfg.train.device, "train.device")
    check_precision(cfg.train.precision, device, "train.precision")
    use_cuda = device.type == "cuda"
    if use_cuda:
        # Under torchrun each process takes the GPU of its local rank.
        device = torch.device("cuda", local_rank if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    torch.manual_seed(cfg.train.seed + rank)
    random.seed(cfg.train.seed + rank)
    np.random.seed(cfg.train.seed + rank)
    return rank, world, device


def check_generator_name(cfg: Config) -> None:
    """Fail before any work on a generator name the registry does not know."""
    if cfg.model.generator not in list_generators():
        raise InputError(
            f"model.generator: unknown generator {cfg.model.generator!r}; "
            f"known: {', '.join(list_generators())}"
        )


def lr_factor(cfg: Config) -> Callable[[int], float]:
    """The learning-rate multiplier at a step: 1, then linear decay from decay_start to 0."""
    it, start = cfg.train.iterations, cfg.train.decay_start

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, (it - step) / max(1, it - start))

    return factor


def make_schedulers(
    opts: dict[str, torch.optim.Optimizer], cfg: Config, step: int = 0
) -> dict[str, LambdaLR]:
    """Schedulers at ``step`` for the config's lr and schedule.

    The learning rate is a function of the step and the config alone, so a resumed run rebuilds
    its schedulers here instead of restoring them: a changed lr or schedule then really applies.
    """
    for opt in opts.values():
        for group in opt.param_groups:
            group["initial_lr"] = cfg.train.lr
    factor = lr_factor(cfg)
    return {k: LambdaLR(o, factor, last_epoch=step - 1) for k, o in opts.items()}


def _ensure_dataset(cfg: Config, rank: int) -> None:
    if cfg.data.dataset == "synthetic" and not Path(cfg.data.root).exists() and rank == 0:
        from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset

        try:
            make_synthetic_dataset(
                cfg.data.root, SyntheticConfig(height=cfg.data.height, width=cfg.data.width)
            )
        except InputError as e:  # its root is this config's data.root
            raise InputError(e.flag_message({"root": "--data.root"})) from None
    if dist.is_initialized():
        dist.barrier()


def build(cfg: Config, rank: int, world: int, device: torch.device) -> Training:
    """Data, networks, losses, image pools, optimisers and schedulers for a fresh start."""
    # Data.
    batch_per_rank = cfg.train.batch_size // world
    _ensure_dataset(cfg, rank)
    masks = cfg.loss.lambda_mask_l1 > 0
    # Heatmaps are rendered from the keypoints on the device, a batch at a time (`batches`).
    train_set = dataset_from_config(cfg.data, "train", body_masks=masks, heatmaps=False, cache=True)
    sample_set = dataset_from_config(cfg.data, "test", body_masks=masks) if rank == 0 else None
    sampler = EpochSampler(len(train_set), cfg.train.seed, rank, world)
    loader_gen = torch.Generator().manual_seed(cfg.train.seed)  # keeps the global RNG untouched
    if len(sampler) // batch_per_rank == 0:
        raise InputError(
            f"{cfg.data.path('train_pairs')}: {len(train_set)} pairs are fewer than one batch "
            f"of {batch_per_rank}"
        )

    # Networks and losses.
    generator = create_generator(cfg.model.generator, **cfg.model.generator_kwargs()).to(device)
    discs: dict[str, nn.Module] = {}
    if cfg.loss.lambda_gan > 0:
        d_kw = dict(
            ndf=cfg.model.ndf,
            norm=cfg.model.discriminator_norm,
            n_blocks=cfg.model.discriminator_blocks,
            use_sigmoid=cfg.loss.gan_mode == "bce",
        )
        discs = {
            "D_app": appearance_discriminator(**d_kw).to(device),
            "D_shape": shape_discriminator(**d_kw).to(device),
        }
    g_loss = GeneratorLoss(cfg.loss).to(device)
    pools = {name: ImagePool(cfg.loss.pool_size, seed=cfg.train.seed + 7 * rank) for name in discs}

    # Optimisers and schedulers.
    betas = (cfg.train.beta1, cfg.train.beta2)
    opts = {"G": adam(generator.parameters(), cfg.train.lr, betas, device)}
    for name, d in discs.items():
        opts[name] = adam(d.parameters(), cfg.train.lr, betas, device)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    for net in (generator, *discs.values()):
        net.to(memory_format=layout)
    precision = check_precision(cfg.train.precision, device, "train.precision")
    scalers = {k: s for k in opts if (s := grad_scaler(precision, device)) is not None}
    return Training(
        precision=precision,
        scalers=scalers,
        cfg=cfg,
        rank=rank,
        world=world,
        device=device,
        generator=generator,
        discs=discs,
        g_loss=g_loss,
        gan=GANLoss(cfg.loss.gan_mode),
        pools=pools,
        opts=opts,
        scheds=make_schedulers(opts, cfg),
        train_set=train_set,
        sample_set=sample_set,
        sampler=sampler,
        loader_gen=loader_gen,
        batch_per_rank=batch_per_rank,
    )


def distribute(t: Training) -> None:
    """Wrap the generator in DistributedDataParallel under torchrun (after restoring it).

    The discriminators stay unwrapped: their gradients are averaged by hand in the D step.
    """
    t.ddp_generator = t.generator
    if t.world > 1:
        t.ddp_generator = nn.parallel.DistributedDataParallel(
            t.generator, device_ids=[t.device.index] if t.device.type == "cuda" else None
        )
    if t.cfg.train.compile:
        t.ddp_generator = compiled(t.ddp_generator, t.device)


def compiled(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` under `torch.compile` (inductor), or ``module`` itself where that cannot run.

    Inductor builds C++ kernels on a CPU and Triton kernels on CUDA: without a working C++
    compiler, or without Triton, the module is returned as it is, with one `InputWarning`
    saying so. Compiling is lazy (at the first step), inside `compile_settings`: should inductor
    fail there, torch runs that graph eagerly instead of ending the run, and `compiled_graphs`
    then counts the frame that failed.
    """
    why = _cannot_compile(device)
    if why is not None:
        warnings.warn(f"train.compile: {why}; training runs eager", InputWarning, stacklevel=2)
        return module
    return torch.compile(module, dynamic=False)  # one shape per run: never symbolic shapes


def _cannot_compile(device: torch.device) -> str | None:
    """Why inductor cannot build kernels for ``device`` here, or None."""
    try:
        import torch._dynamo  # loads inductor's config, which the checks below read
        import torch._inductor.config  # noqa: F401

        if device.type == "cuda":
            from torch.utils._triton import has_triton

            return None if has_triton() else "torch.compile needs Triton on CUDA, not installed"
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as e:  # InvalidCxxCompiler, a broken toolchain, a torch without these
        return f"torch.compile cannot build kernels here ({str(e).splitlines()[0][:120]})"
    return None


@contextlib.contextmanager
def compile_settings() -> Iterator[None]:
    """Torch's settings while a `compiled` module trains, put back afterwards.

    A graph inductor fails on runs eagerly instead of ending the run (``suppress_errors``), and
    the warning torch's C++-extension helper logs about CUDA_HOME on every machine without the
    CUDA toolkit (it concerns extensions, not this compile) is not shown.
    """
    import torch._dynamo

    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch._dynamo.config.patch(suppress_errors=True):
            yield
    finally:
        logger.setLevel(level)


def compile_failures() -> int:
    """Frames dynamo tried and could not compile in this process so far (grows when a
    compiled module falls back to eager; unchanged when it reuses what it compiled before)."""
    import torch._dynamo.utils

    frames = torch._dynamo.utils.counters["frames"]
    return int(frames["total"] - frames["ok"])


def _to_device(value: Any, t: Training) -> Any:
    """A batch entry on the training device, images and heatmaps in the configured layout."""
    if not torch.is_tensor(value):
        return value
    value = value.to(t.device, non_blocking=True)
    if t.cfg.train.channels_last and value.dim() == 4:
        value = value.contiguous(memory_format=torch.channels_last)
    return value


def _worker_error(e: Exception) -> InputError | None:
    """The InputError behind a DataLoader worker's re-raised exception, without the traceback."""
    if isinstance(e, InputError):
        last = str(e).strip().splitlines()[-1]
        return InputError(last.split("InputError: ", 1)[-1])
    return None


def batches(t: Training, stopping: Callable[[], bool]) -> Iterator[dict[str, Any]]:
    """Training batches on the device, epoch after epoch, from the position in ``t``.

    ``t.epoch`` and ``t.batch_in_epoch`` follow the batches handed out. Ends early when the data
    workers fail while ``stopping()`` is true (the same Ctrl-C stops them).
    """
    while True:
        t.sampler.set_position(t.epoch, t.batch_in_epoch * t.batch_per_rank)
        loader = DataLoader(
            t.train_set,
            batch_size=t.batch_per_rank,
            sampler=t.sampler,
            drop_last=True,
            num_workers=t.cfg.data.num_workers,
            generator=t.loader_gen,
            pin_memory=t.device.type == "cuda",
            persistent_workers=False,
        )
        it = iter(loader)
        while True:
            try:
                batch = next(it)
            except StopIteration:  # end of the epoch
                t.epoch, t.batch_in_epoch = t.epoch + 1, 0
                break
            except Exception as e:
                if stopping():  # workers killed by the same Ctrl-C
                    return
                clean = _worker_error(e)
                if clean is not None:
                    raise clean from None
                raise
            t.batch_in_epoch += 1
            batch = add_heatmaps({k: _to_device(v, t) for k, v in batch.items()}, t.cfg.data)
            for k in ("src_pose", "tgt_pose"):
                batch[k] = _to_device(batch[k], t)  # channels_last when configured
            yield batch


def adam(
    params: Iterable[torch.nn.Parameter],
    lr: float,
    betas: tuple[float, float],
    device: torch.device,
) -> torch.optim.Adam:
    """Adam with torch's fused kernel where this torch has one for ``device``, else its loop.

    The fused kernel (CUDA; the CPU since torch 2.4) updates all parameters in one pass instead
    of a loop of small ops per tensor; the update rule and the float32 state are the same.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device in this torch
        return torch.optim.Adam(params, lr=lr, betas=betas)
