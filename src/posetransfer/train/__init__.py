"""Training: `train(cfg) -> Path`, one function from config to run directory.

Runs on one CPU or GPU, or unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel:
every process sees its own shard of each epoch, rank 0 logs and writes checkpoints). A run lives in
a numbered directory:

    runs/00003-patn_small-synthetic/
        config.yaml          the resolved config
        stats.jsonl          one JSON line of averaged losses per log interval
        events.out.tfevents  the same in TensorBoard
        samples/             sample grids of test pairs (condition, target pose, generated, truth)
        checkpoints/         step-NNNNNNN/ directories (see `posetransfer.checkpoint`), `latest`

Resuming (``train.resume``) restores the networks, optimisers, schedulers, image pools, step,
data order and every RNG, so that an interrupted run continues exactly as if it had not stopped.
Ctrl-C finishes the current step, writes a checkpoint and exits.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from posetransfer.checkpoint import (
    DISCRIMINATORS_FILE,
    GENERATOR_FILE,
    STATE_FILE,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from posetransfer.config import Config
from posetransfer.data.datasets import dataset_from_config, tensor_to_image
from posetransfer.device import resolve_device
from posetransfer.errors import InputError
from posetransfer.losses import GANLoss, GeneratorLoss, ImagePool, discriminator_step
from posetransfer.models.discriminators import appearance_discriminator, shape_discriminator
from posetransfer.models.registry import create_generator, list_generators
from posetransfer.visualize import sample_grid, save_png

N_SAMPLES = 8  # test pairs shown in each sample grid


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across processes, that can start mid-epoch.

    DistributedSampler cannot resume inside an epoch; exact resumption needs that.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(n / world)

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: self.per_rank * self.world - self.n]  # pad to equal shards
        shard = order[self.rank :: self.world]
        return iter(shard[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


class Stats:
    """Averages named values between log calls; rank 0 writes stats.jsonl and TensorBoard."""

    def __init__(self, run_dir: Path | None):
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.run_dir = run_dir
        self.writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir))

    def report(self, name: str, value: float | torch.Tensor) -> None:
        self.sums[name] += float(value)
        self.counts[name] += 1

    def flush(self, step: int) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        if self.run_dir is not None and means:
            with (self.run_dir / "stats.jsonl").open("a") as f:
                f.write(json.dumps({"step": step, **means}) + "\n")
            for k, v in means.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        return means

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _setup_distributed(cfg: Config) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.train.device, "train.device")
    use_cuda = device.type == "cuda"
    if use_cuda:
        # Under torchrun each process takes the GPU of its local rank.
        device = torch.device("cuda", local_rank if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


def _new_run_dir(cfg: Config) -> Path:
    runs = Path(cfg.train.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in runs.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    name = cfg.train.run_name or f"{cfg.model.generator}-{cfg.data.dataset}"
    run_dir = runs / f"{max(numbers, default=-1) + 1:05d}-{name}"
    run_dir.mkdir()
    return run_dir


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def _lr_lambda(cfg: Config):
    it, start = cfg.train.iterations, cfg.train.decay_start

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, (it - step) / max(1, it - start))

    return factor


def _worker_error(e: Exception) -> InputError | None:
    """The InputError behind a DataLoader worker's re-raised exception, without the traceback."""
    if isinstance(e, InputError):
        last = str(e).strip().splitlines()[-1]
        return InputError(last.split("InputError: ", 1)[-1])
    return None


def _ensure_dataset(cfg: Config, rank: int) -> None:
    if cfg.data.dataset == "synthetic" and not Path(cfg.data.root).exists() and rank == 0:
        from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset

        make_synthetic_dataset(
            cfg.data.root, SyntheticConfig(height=cfg.data.height, width=cfg.data.width)
        )
    if dist.is_initialized():
        dist.barrier()


def train(cfg: Config) -> Path:
    """Train a generator as configured and return the run directory.

    Args:
        cfg: the full configuration; ``cfg.train.resume`` continues an earlier run.

    Returns:
        The run directory, holding checkpoints, samples and logs.
    """
    # Processes, devices and seeds.
    rank, world, device = _setup_distributed(cfg)
    if cfg.train.batch_size % world:
        raise InputError(
            f"train.batch_size {cfg.train.batch_size} is not divisible by {world} processes"
        )
    batch_per_rank = cfg.train.batch_size // world
    torch.manual_seed(cfg.train.seed + rank)
    random.seed(cfg.train.seed + rank)
    np.random.seed(cfg.train.seed + rank)

    # Resume: the run directory comes from the checkpoint; the config is used as given (load
    # it with load_config(None, ["train.resume=RUN"]) to get the saved one).
    resume_ckpt = resolve_checkpoint(cfg.train.resume) if cfg.train.resume else None
    gen_name, gen_kwargs = cfg.model.generator, cfg.model.generator_kwargs()
    if gen_name not in list_generators():
        raise InputError(
            f"model.generator: unknown generator {gen_name!r}; known: {', '.join(list_generators())}"
        )

    # Data.
    _ensure_dataset(cfg, rank)
    train_set = dataset_from_config(cfg.data, "train")
    sample_set = dataset_from_config(cfg.data, "test") if rank == 0 else None
    sampler = EpochSampler(len(train_set), cfg.train.seed, rank, world)
    loader_gen = torch.Generator().manual_seed(cfg.train.seed)  # keeps the global RNG untouched
    steps_per_epoch = len(sampler) // batch_per_rank
    if steps_per_epoch == 0:
        raise InputError(
            f"{cfg.data.path('train_pairs')}: {len(train_set)} pairs are fewer than one batch "
            f"of {batch_per_rank}"
        )

    # Construct networks.
    generator = create_generator(gen_name, **gen_kwargs).to(device)
    use_gan = cfg.loss.lambda_gan > 0
    discs: dict[str, nn.Module] = {}
    if use_gan:
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
    g_loss_fn = GeneratorLoss(cfg.loss).to(device)
    gan = GANLoss(cfg.loss.gan_mode)
    pools = {name: ImagePool(cfg.loss.pool_size, seed=cfg.train.seed + 7 * rank) for name in discs}

    # Optimisers and schedulers.
    betas = (cfg.train.beta1, cfg.train.beta2)
    opts = {"G": torch.optim.Adam(generator.parameters(), lr=cfg.train.lr, betas=betas)}
    for name, d in discs.items():
        opts[name] = torch.optim.Adam(d.parameters(), lr=cfg.train.lr, betas=betas)
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg)) for k, o in opts.items()}

    # Restore, or start a new run directory.
    step, epoch, start_in_epoch = 0, 0, 0
    if resume_ckpt is not None:
        try:
            generator.load_state_dict(load_file(resume_ckpt / GENERATOR_FILE))
            if discs:
                d_sd = load_file(resume_ckpt / DISCRIMINATORS_FILE)
                for name, d in discs.items():
                    n = len(name) + 1
                    d.load_state_dict(
                        {k[n:]: v for k, v in d_sd.items() if k.startswith(name + ".")}
                    )
        except (RuntimeError, FileNotFoundError) as e:
            raise InputError(
                f"{resume_ckpt}: does not match the config's model and losses "
                f"({str(e).splitlines()[0]}); resume without --config to use the saved one"
            )
        state = torch.load(resume_ckpt / STATE_FILE, map_location="cpu", weights_only=False)
        for k, o in opts.items():
            o.load_state_dict(state["optimizers"][k])
            scheds[k].load_state_dict(state["schedulers"][k])
        step, epoch, start_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        ranks = state["ranks"]
        mine = ranks[rank] if rank < len(ranks) else ranks[0]
        _set_rng_state(mine["rng"])
        for name, pool in pools.items():
            pool.load_state_dict(mine["pools"][name], device)
        loader_gen.set_state(state["loader_generator"])
        run_dir = resume_ckpt.parent.parent
    else:
        run_dir = _new_run_dir(cfg) if rank == 0 else None
        if world > 1:
            holder = [str(run_dir) if rank == 0 else None]
            dist.broadcast_object_list(holder, src=0)
            run_dir = Path(holder[0])
    if rank == 0:
        (run_dir / "config.yaml").write_text(cfg.to_yaml())

    ddp_generator = generator
    if world > 1:
        ddp_generator = nn.parallel.DistributedDataParallel(
            generator, device_ids=[device.index] if device.type == "cuda" else None
        )
    stats = Stats(run_dir if rank == 0 else None)
    ckpt_dir = run_dir / "checkpoints"

    def make_loader(start: int) -> DataLoader:
        sampler.set_position(epoch, start * batch_per_rank)
        return DataLoader(
            train_set,
            batch_size=batch_per_rank,
            sampler=sampler,
            drop_last=True,
            num_workers=cfg.data.num_workers,
            generator=loader_gen,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )

    def save(at_step: int, batch_in_epoch: int) -> None:
        per_rank = {"rng": _rng_state(), "pools": {n: p.state_dict() for n, p in pools.items()}}
        if world > 1:
            gathered: list = [None] * world
            dist.all_gather_object(gathered, per_rank)
        else:
            gathered = [per_rank]
        if rank != 0:
            return
        state = {
            "step": at_step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "optimizers": {k: o.state_dict() for k, o in opts.items()},
            "schedulers": {k: s.state_dict() for k, s in scheds.items()},
            "ranks": gathered,
            "loader_generator": loader_gen.get_state(),
        }
        save_checkpoint(
            ckpt_dir / f"step-{at_step:07d}",
            generator,
            gen_name,
            gen_kwargs,
            cfg,
            at_step,
            discs,
            state,
        )
        prune_checkpoints(ckpt_dir, cfg.train.keep_checkpoints)

    # Ctrl-C (and torchrun's SIGTERM) finish the current step, then checkpoint and stop.
    stop = {"signal": False}
    previous = {}

    def on_signal(signum, frame):
        if stop["signal"]:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        stop["signal"] = True
        if rank == 0:
            tqdm.write(
                "interrupted: finishing this step and writing a checkpoint (Ctrl-C again to abort)"
            )

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)

    # Train.
    t_start = time.monotonic()
    bar = tqdm(
        total=cfg.train.iterations,
        initial=step,
        disable=rank != 0 or not cfg.train.progress,
        desc="train",
        unit="it",
        dynamic_ncols=True,
    )
    generator.train()
    for d in discs.values():
        d.train()
    last_saved = -1

    def checkpoint(at_step: int, batch_in_epoch: int) -> None:
        nonlocal last_saved
        if at_step != last_saved:
            save(at_step, batch_in_epoch)
            last_saved = at_step

    stopping = False
    batch_in_epoch = start_in_epoch
    try:
        while step < cfg.train.iterations and not stopping:
            batches = iter(make_loader(start_in_epoch))
            batch_in_epoch = start_in_epoch
            while step < cfg.train.iterations:
                try:
                    batch = next(batches)
                except StopIteration:  # end of the epoch
                    epoch, start_in_epoch = epoch + 1, 0
                    break
                except Exception as e:
                    if stop["signal"]:  # workers killed by the same Ctrl-C
                        stopping = True
                        break
                    clean = _worker_error(e)
                    if clean is not None:
                        raise clean from None
                    raise
                batch = {
                    k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                    for k, v in batch.items()
                }
                _train_step(
                    batch, ddp_generator, discs, opts, g_loss_fn, gan, pools, cfg, world, stats
                )
                for s in scheds.values():
                    s.step()
                step += 1
                batch_in_epoch += 1
                bar.update(1)

                if step % cfg.train.log_every == 0:
                    stats.report("lr", scheds["G"].get_last_lr()[0])
                    means = stats.flush(step)
                    bar.set_postfix(
                        {
                            k.split("/")[-1]: f"{v:.3f}"
                            for k, v in means.items()
                            if k.startswith("loss/G_")
                        }
                    )
                if rank == 0 and (
                    step % cfg.train.sample_every == 0 or step == cfg.train.iterations
                ):
                    write_samples(
                        generator, sample_set, run_dir / "samples" / f"step-{step:07d}.png", device
                    )
                # Stop on Ctrl-C or the time budget; all processes agree before acting.
                minutes = (time.monotonic() - t_start) / 60
                want_stop = stop["signal"] or (
                    cfg.train.max_minutes is not None and minutes >= cfg.train.max_minutes
                )
                if world > 1:
                    flag = torch.tensor([float(want_stop)], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    want_stop = bool(flag.item())
                if step % cfg.train.checkpoint_every == 0 or want_stop:
                    checkpoint(step, batch_in_epoch)
                if want_stop:
                    stopping = True
                    break
        if step > 0:
            checkpoint(step, batch_in_epoch)
        if stopping and rank == 0 and step < cfg.train.iterations:
            tqdm.write(f"stopped at step {step}; resume with --train.resume {run_dir}")
    finally:
        bar.close()
        stats.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if world > 1 and dist.is_initialized():
            dist.barrier()
    return run_dir


def _train_step(batch, generator, discs, opts, g_loss_fn, gan, pools, cfg, world, stats) -> None:
    """One generator update, then one update of each discriminator."""
    # Generator step (discriminators frozen).
    for d in discs.values():
        d.requires_grad_(False)
    fake = generator(batch["src_img"], batch["src_pose"], batch["tgt_pose"])
    terms = g_loss_fn(fake, batch, discs.get("D_app"), discs.get("D_shape"))
    opts["G"].zero_grad(set_to_none=True)
    terms["G_total"].backward()
    opts["G"].step()
    for k, v in terms.items():
        stats.report(f"loss/{k}", v.detach())
    if not discs:
        return

    # Discriminator steps: real pairs against generated ones drawn through the image pools.
    fake = fake.detach()
    pairs = {
        "D_app": (
            torch.cat([batch["tgt_img"], batch["src_img"]], 1),
            torch.cat([fake, batch["src_img"]], 1),
        ),
        "D_shape": (
            torch.cat([batch["tgt_img"], batch["tgt_pose"]], 1),
            torch.cat([fake, batch["tgt_pose"]], 1),
        ),
    }
    for name, d in discs.items():
        d.requires_grad_(True)
        opts[name].zero_grad(set_to_none=True)
        real, fake_pair = pairs[name]
        parts = discriminator_step(gan, d, real, pools[name].query(fake_pair), cfg.loss.lambda_gan)
        if world > 1:  # average gradients by hand: D is not wrapped in DDP (see module notes)
            for p in d.parameters():
                dist.all_reduce(p.grad)
                p.grad /= world
        opts[name].step()
        stats.report(f"loss/{name}_real", parts["real"])
        stats.report(f"loss/{name}_fake", parts["fake"])


@torch.no_grad()
def write_samples(generator: nn.Module, dataset, path: Path, device: torch.device) -> Path:
    """A grid of the first test pairs: condition, target pose, generated, ground truth."""
    items = [dataset[i] for i in range(min(N_SAMPLES, len(dataset)))]
    src = torch.stack([it["src_img"] for it in items]).to(device)
    was_training = generator.training
    generator.eval()
    fake = generator(
        src,
        torch.stack([it["src_pose"] for it in items]).to(device),
        torch.stack([it["tgt_pose"] for it in items]).to(device),
    )
    generator.train(was_training)
    grid = sample_grid(
        [tensor_to_image(it["src_img"]) for it in items],
        [it["tgt_kps"].numpy() for it in items],
        [tensor_to_image(f) for f in fake],
        [tensor_to_image(it["tgt_img"]) for it in items],
    )
    return save_png(grid, path)
