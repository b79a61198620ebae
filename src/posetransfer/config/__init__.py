"""Configuration: frozen dataclasses, loaded from shipped YAML files with dotted overrides.

    cfg = load_config("market_patn", ["train.batch_size=8", "model.ngf=32"])

The command line takes the same overrides as ``--train.batch_size 8``. The resolved config is
saved as ``config.yaml`` in every run directory and checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from posetransfer.core.precision import AUTO, PRECISIONS
from posetransfer.errors import InputError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class DataConfig:
    """Where the paired dataset lives and how poses become heatmaps."""

    dataset: str = "synthetic"
    """"market", "fashion" or "synthetic" (built on first use if `root` does not exist)."""
    root: str = "data/synthetic"
    """Dataset root holding train/, test/ and the CSV files."""
    train_annotations: str = "synthetic-annotation-train.csv"
    """Annotation CSV of the training images, relative to root (or absolute)."""
    train_pairs: str = "synthetic-pairs-train.csv"
    """Pairs CSV for training, relative to root (or absolute)."""
    test_annotations: str = "synthetic-annotation-test.csv"
    """Annotation CSV of the test images."""
    test_pairs: str = "synthetic-pairs-test.csv"
    """Pairs CSV for testing (samples during training, generation)."""
    train_dir: str = "train"
    """Folder of training images, relative to root."""
    test_dir: str = "test"
    """Folder of test images, relative to root."""
    height: int = 128
    """Image height: 128 for Market-1501, 256 for DeepFashion."""
    width: int = 64
    """Image width: 64 for Market-1501, 176 for DeepFashion."""
    sigma: float = 6.0
    """Standard deviation of the joint Gaussians in the heatmaps, in pixels."""
    legacy_heatmaps: bool = False
    """The authors' uint8-truncated heatmaps (one pixel per joint); their DeepFashion model."""
    num_workers: int = 2
    """DataLoader worker processes per training process."""
    cache_mb: int = 512
    """Decoded training images (and body masks) kept in memory, in MB per loading process; 0
    decodes every time. With num_workers 0 the training process keeps them for the whole run;
    DataLoader workers are started anew each epoch, so each worker's cache (up to cache_mb
    each) lasts one epoch and holds the images of its share of the pairs."""

    def __post_init__(self):
        if self.dataset not in ("market", "fashion", "synthetic"):
            raise InputError(
                f"data.dataset must be market, fashion or synthetic, not {self.dataset!r}"
            )
        if self.height % 4 or self.width % 4 or self.height <= 0 or self.width <= 0:
            raise InputError(
                f"data.height and data.width must be positive multiples of 4, got "
                f"{self.height}x{self.width}"
            )
        if self.sigma <= 0:
            raise InputError(f"data.sigma must be positive, got {self.sigma}")
        if self.num_workers < 0:
            raise InputError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.cache_mb < 0:
            raise InputError(f"data.cache_mb must be >= 0, got {self.cache_mb}")

    def path(self, name: str) -> Path:
        """A data path from this config, resolved against root unless absolute."""
        p = Path(getattr(self, name))
        return p if p.is_absolute() else Path(self.root) / p


@dataclass(frozen=True)
class ModelConfig:
    """Which generator to build, and the discriminators."""

    generator: str = "patn_market"
    """A registered generator name (see `posetransfer.models.list_generators()`)."""
    ngf: int | None = None
    """Override of the generator's base width (64 in the paper)."""
    n_blocks: int | None = None
    """Override of the number of transfer blocks (9 for PATN, 5 for APATN)."""
    dropout: float | None = None
    """Override of the dropout probability inside the blocks (0.5)."""
    discriminator_norm: str = "batch"
    """Norm of both discriminators: "batch" (Market) or "instance" (DeepFashion)."""
    ndf: int = 64
    """Discriminator base width."""
    discriminator_blocks: int = 3
    """Residual blocks in each discriminator."""

    def __post_init__(self):
        if self.discriminator_norm not in ("batch", "instance"):
            raise InputError(
                f"model.discriminator_norm must be batch or instance, "
                f"not {self.discriminator_norm!r}"
            )
        for name in ("ngf", "n_blocks", "ndf", "discriminator_blocks"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise InputError(f"model.{name} must be at least 1, got {v}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise InputError(f"model.dropout must be in [0, 1), got {self.dropout}")

    def generator_kwargs(self) -> dict[str, Any]:
        """Keyword overrides passed to `create_generator` (the fields that are set)."""
        return {
            k: getattr(self, k)
            for k in ("ngf", "n_blocks", "dropout")
            if getattr(self, k) is not None
        }


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (see docs/training.md); a weight of 0 switches that term off."""

    gan_mode: str = "bce"
    """"bce" (Market, with sigmoid) or "lsgan" (DeepFashion, least squares)."""
    lambda_gan: float = 5.0
    """Weight of the adversarial terms; 0 trains without discriminators."""
    lambda_l1: float = 10.0
    """Weight of the pixel L1 loss."""
    lambda_perceptual: float = 10.0
    """Weight of the VGG19 relu1_2 L1 loss; 0 is an explicit choice to train without it."""
    lambda_mask_l1: float = 0.0
    """Weight of the L1 loss inside the target's body mask (the mask of mask-SSIM), averaged
    over the mask's pixels: PG2's pose-mask loss. Keeps the person from drowning in a
    background that the condition image cannot predict; 0 (the paper's recipes) leaves it off."""
    lambda_feature_match: float = 0.0
    """Weight of discriminator feature matching: L1 between D_A's and D_S's inner features of
    the generated and the real pair, averaged over their layers. A perceptual term that needs
    no pretrained network (needs lambda_gan > 0); 0 leaves it off."""
    vgg_weights: str | None = None
    """Path to torchvision VGG19 ImageNet weights; None looks in torch's hub cache."""
    pool_size: int = 50
    """Image pool of generated pairs shown to the discriminators (50 Market, 0 DeepFashion)."""

    def __post_init__(self):
        if self.gan_mode not in ("bce", "lsgan"):
            raise InputError(f"loss.gan_mode must be bce or lsgan, not {self.gan_mode!r}")
        for name in (
            "lambda_gan",
            "lambda_l1",
            "lambda_perceptual",
            "lambda_mask_l1",
            "lambda_feature_match",
            "pool_size",
        ):
            if getattr(self, name) < 0:
                raise InputError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.lambda_feature_match > 0 and self.lambda_gan == 0:
            raise InputError(
                "loss.lambda_feature_match needs the discriminators: set loss.lambda_gan > 0, "
                "or loss.lambda_feature_match=0"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, logging and checkpointing."""

    iterations: int = 90000
    """Total generator updates."""
    decay_start: int = 60000
    """Step from which the learning rate decays linearly to 0 at `iterations` (none if later)."""
    batch_size: int = 32
    """Global batch size, split evenly across processes under torchrun."""
    lr: float = 2e-4
    """Adam learning rate of the generator and both discriminators."""
    beta1: float = 0.5
    """Adam beta1."""
    beta2: float = 0.999
    """Adam beta2."""
    seed: int = 0
    """Seed of all random number generators."""
    device: str = "auto"
    """"auto" (CUDA when present), "cpu", "cuda" or "cuda:N"."""
    log_every: int = 50
    """Steps between loss logs (TensorBoard and stats.jsonl)."""
    sample_every: int = 1000
    """Steps between sample grids of test pairs."""
    checkpoint_every: int = 5000
    """Steps between checkpoints (one is always written at the end and on Ctrl-C)."""
    keep_checkpoints: int = 3
    """How many of the latest checkpoints to keep."""
    max_minutes: float | None = None
    """Stop (with a checkpoint) after this much wall time, even before `iterations`."""
    runs_dir: str = "runs"
    """Parent of the numbered run directories."""
    run_name: str | None = None
    """Suffix of the run directory name; defaults to <generator>-<dataset>."""
    resume: str | None = None
    """A run directory to resume exactly (from its newest intact checkpoint), or one checkpoint of
    it, ``RUN/checkpoints/step-N``."""
    init_from: str | None = None
    """Start a new run from the generator weights of this checkpoint, run directory or bundled
    model (fine-tuning, e.g. adding the GAN terms to a model trained with L1): the architecture
    must match; the step, optimisers and discriminators start fresh. Ignored on resume."""
    progress: bool = True
    """Show a progress bar."""
    precision: str = "fp32"
    """Arithmetic of the training step: "fp32"; "bf16" (autocast to bfloat16, on CPUs with
    AVX512-BF16/AMX and GPUs with bf16); "fp16" (autocast with a gradient scaler, CUDA only);
    "auto" (bf16 where native, else fp16 on CUDA, else fp32)."""
    channels_last: bool = False
    """Keep images and weights in the channels-last memory layout (can help on GPUs; measured
    no gain on a 2-core AVX-512 CPU, see docs/training.md)."""
    compile: bool = False
    """Compile the generator's forward and backward with `torch.compile` (inductor) before the
    first step. The first step then takes the compile time; where torch cannot compile (no C++
    compiler, an unsupported platform) training says so once and runs eager."""

    def __post_init__(self):
        if self.iterations < 1:
            raise InputError(f"train.iterations must be at least 1, got {self.iterations}")
        if self.decay_start < 0:
            raise InputError(f"train.decay_start must be >= 0, got {self.decay_start}")
        if self.batch_size < 1:
            raise InputError(f"train.batch_size must be at least 1, got {self.batch_size}")
        if self.lr <= 0:
            raise InputError(f"train.lr must be positive, got {self.lr}")
        for name in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise InputError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.precision not in (*PRECISIONS, AUTO):
            raise InputError(
                f"train.precision={self.precision!r}: choose one of "
                f"{', '.join((*PRECISIONS, AUTO))}",
                arg="train.precision",
            )


@dataclass(frozen=True)
class Config:
    """Everything a training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The sections as nested dicts: what config.yaml holds."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in _SECTION_TYPES}

    def to_yaml(self) -> str:
        """`to_dict` as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTION_TYPES = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "train": TrainConfig,
}


def config_from_dict(d: dict[str, Any], origin: str = "config") -> Config:
    """Build a Config from nested dicts, rejecting unknown sections and fields by name."""
    if not isinstance(d, dict):
        raise InputError(f"{origin}: expected a mapping of sections (data, model, loss, train)")
    sections = {}
    for name, value in d.items():
        if name not in _SECTION_TYPES:
            raise InputError(
                f"{origin}: unknown section {name!r}; known: {', '.join(_SECTION_TYPES)}"
            )
        cls = _SECTION_TYPES[name]
        value = value or {}
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise InputError(
                f"{origin}: unknown field {name}.{sorted(unknown)[0]}; "
                f"known: {', '.join(sorted(known))}"
            )
        hints = typing.get_type_hints(cls)
        typed = {k: _coerce(v, hints[k], f"{name}.{k}", origin) for k, v in value.items()}
        sections[name] = cls(**typed)
    return Config(**sections)


_NONE_WORDS = ("", "null", "none", "~")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _coerce(value: Any, hint: Any, field_name: str, origin: str) -> Any:
    """Convert a YAML or command-line value to a field's type, or raise InputError naming it.

    Command-line values arrive as text: ``--train.lr 2e-4`` is a float, ``--train.run_name 0001``
    stays the text "0001", ``--data.root no`` stays a path.
    """
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (
        optional and isinstance(value, str) and value.strip().lower() in _NONE_WORDS
    ):
        if optional:
            return None
        raise InputError(f"{origin}: {field_name} needs a value")
    bad = InputError(f"{origin}: {field_name} must be {base.__name__}, got {value!r}")
    if base is str:
        if isinstance(value, dict | list):
            raise bad
        return str(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE_WORDS or text in _FALSE_WORDS:
            return text in _TRUE_WORDS
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise bad
        if not number.is_integer():
            raise bad
        return int(number)
    if base is float:
        if isinstance(value, bool):
            raise bad
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise bad
        if not math.isfinite(number):  # nan or inf: training would go on to NaN weights
            raise InputError(f"{origin}: {field_name} must be a finite number, got {value!r}")
        return number
    return value


def find_config(name_or_path: str | Path) -> Path:
    """A shipped config name (``market_patn``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"config file not found: {p}")
        return p
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise InputError(
        f"unknown config {str(name_or_path)!r}; shipped: {', '.join(shipped_configs())}"
    )


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[list[str], str]:
    """``"train.batch_size=8"`` -> (["train", "batch_size"], "8"); the field's type converts it."""
    if "=" not in text:
        raise InputError(f"override {text!r} must look like section.field=value")
    key, raw = text.split("=", 1)
    parts = key.strip().lstrip("-").split(".")
    if len(parts) != 2 or not all(parts):
        raise InputError(f"override {text!r}: the key must be section.field, e.g. train.batch_size")
    return parts, raw.strip()


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    d = {k: dict(v or {}) for k, v in d.items()}
    for text in overrides:
        (section, name), value = parse_override(text)
        d.setdefault(section, {})[name] = value
    return d


def resume_override(overrides: list[str]) -> str | None:
    """The run or checkpoint that ``train.resume=...`` overrides ask to resume (the last one wins).

    ``none`` (or ``null``, ``~``) means not resuming, as for any optional field. An empty value is
    refused: it is most often an unset shell variable, and starting a new run in its place would
    go unnoticed.

    Raises:
        InputError: an empty ``train.resume=`` (``arg="train.resume"``).
    """
    values = [v for k, v in map(parse_override, overrides) if k == ["train", "resume"]]
    if not values:
        return None
    if not values[-1]:
        raise InputError(
            "train.resume='': empty; name the run directory (or checkpoint) to resume, or leave "
            "train.resume out to start a new run",
            arg="train.resume",
        )
    return None if values[-1].lower() in _NONE_WORDS else values[-1]


def load_config(
    name_or_path: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Load a shipped config by name or a YAML file, then apply ``section.field=value`` overrides.

    Args:
        name_or_path: e.g. "market_patn", "fashion_patn", "synthetic", or a path; None for the
            defaults. To resume a run with its own saved config, use
            `posetransfer.train.resume_config` instead.
        overrides: e.g. ["train.batch_size=8", "model.ngf=32"].

    Raises:
        InputError: an unknown config, bad YAML, an unknown or ill-typed field, or an empty
            ``train.resume`` (see `resume_override`).
    """
    overrides = list(overrides or [])
    resume_override(overrides)  # an empty train.resume= is refused here too
    base: dict[str, Any] = {}
    origin = "defaults"
    if name_or_path is not None:
        path = find_config(name_or_path)
        origin = str(path)
        try:
            base = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML ({e})")
    return build_config(base, overrides, origin)


def build_config(base: dict[str, Any], overrides: list[str], origin: str) -> Config:
    """``base`` (config sections as read from ``origin``) with the overrides applied, checked."""
    merged = apply_overrides(base, overrides)
    if overrides:
        origin += " with the command-line overrides"
    return config_from_dict(merged, origin)


def cli_overrides(extra: list[str]) -> list[str]:
    """Turn argparse leftovers ``--train.batch_size 8 --model.ngf=32`` into override strings."""
    out, i = [], 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--") or "." not in tok:
            raise InputError(
                f"unrecognised argument {tok!r}; overrides look like --train.batch_size 8"
            )
        if "=" in tok:
            out.append(tok[2:])
            i += 1
        else:
            if i + 1 >= len(extra):
                raise InputError(f"override {tok} needs a value")
            out.append(f"{tok[2:]}={extra[i + 1]}")
            i += 2
    return out
