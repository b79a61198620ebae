"""Losses of PATN training (docs/training.md): adversarial, L1, body-mask L1, perceptual,
discriminator feature matching, and the image pool.

`GeneratorLoss` returns named terms (a dict of scalars) so that training can log each of them;
the weighted total is under ``"G_total"``. `discriminator_step` back-propagates one
discriminator's loss and returns its real and fake terms.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.core.files import load_torch_file
from posetransfer.errors import InputError

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 weights
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GANLoss(nn.Module):
    """BCE on sigmoid outputs (Market) or least squares (DeepFashion), element-wise, averaged."""

    def __init__(self, mode: str = "bce"):
        super().__init__()
        if mode not in ("bce", "lsgan"):
            raise ValueError(f"GAN mode must be bce or lsgan, got {mode!r}")
        self.mode = mode

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        # In float32 and outside autocast: CUDA's autocast refuses BCE on probabilities (the
        # discriminators end in a sigmoid, as the paper's do), and fp16 would round log(p).
        prediction = prediction.float()
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        with torch.autocast(prediction.device.type, enabled=False):
            if self.mode == "bce":
                return F.binary_cross_entropy(prediction, target)
            return F.mse_loss(prediction, target)


def vgg_weights_path(path: str | Path | None) -> Path:
    """The VGG19 weights file: the given path, or torchvision's file in torch's hub cache."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"loss.vgg_weights={p}: file not found", arg="loss.vgg_weights")
        return p
    p = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if not p.is_file():
        raise InputError(
            f"the perceptual loss needs torchvision's ImageNet VGG19 weights, not found at {p}. "
            'On a machine with internet run: python -c "import torchvision; '
            "torchvision.models.vgg19(weights='IMAGENET1K_V1')\" (or download "
            f"{VGG19_FILE} from torchvision and set loss.vgg_weights=PATH, on the command line "
            "--loss.vgg_weights PATH). To train without the perceptual term, say so explicitly "
            "with loss.lambda_perceptual=0 (--loss.lambda_perceptual 0)."
        )
    return p


class PerceptualLoss(nn.Module):
    """L1 between VGG19 features up to relu1_2 (layers 0..3) of generated and real images.

    Inputs in [-1, 1] are mapped to [0, 1] and ImageNet-normalised, as the authors' code does.
    The VGG weights are frozen and never substituted: a missing file is an error.
    """

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        path = vgg_weights_path(weights)
        sd = load_torch_file(path, "VGG19 weights")
        # torchvision's vgg19().features[:4]: conv1_1, ReLU, conv1_2, ReLU. Only these four
        # tensors are read, so the full 548 MB file or just these layers both work.
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()
        )
        wanted = {f"{i}.{t}": f"features.{i}.{t}" for i in (0, 2) for t in ("weight", "bias")}
        try:
            self.features.load_state_dict({k: sd[v] for k, v in wanted.items()})
        except (KeyError, RuntimeError, TypeError) as e:
            raise InputError(f"{path}: not torchvision VGG19 weights (features.0/2: {e})")
        self.features.eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        def feats(x):
            return self.features(((x + 1) / 2 - self.mean) / self.std)

        return F.l1_loss(feats(fake), feats(real).detach())


class ImagePool:
    """A buffer of earlier generated inputs for the discriminators (Shrivastava et al.).

    Once full, each query returns, with probability 1/2 per image, a stored image (replaced by the
    new one) instead of the new one. Size 0 returns the input unchanged.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """The batch to show the discriminator in place of ``images`` [B, C, H, W]."""
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        """Size, stored images (on the CPU) and RNG state: tensors and plain Python values."""
        return {
            "size": self.size,
            "images": [t.cpu() for t in self.images],
            "rng": self.rng.getstate(),
        }

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        """Restore a `state_dict`, putting the stored images on ``device``."""
        self.size = state["size"]
        self.images = [t.to(device) for t in state["images"]]
        self.rng.setstate(state["rng"])


class GeneratorLoss(nn.Module):
    """The generator's weighted terms (docs/training.md, "Losses").

    lambda_gan * (L_G(D_S) + L_G(D_A)) / 2 + lambda_l1 * L1 + lambda_perceptual * L_VGG
    + lambda_mask_l1 * L1 inside the target's body mask
    + lambda_feature_match * (FM(D_S) + FM(D_A)) / 2.
    """

    def __init__(self, loss_cfg):
        super().__init__()
        self.cfg = loss_cfg
        self.gan = GANLoss(loss_cfg.gan_mode)
        self.perceptual = (
            PerceptualLoss(loss_cfg.vgg_weights) if loss_cfg.lambda_perceptual > 0 else None
        )

    def forward(self, fake, batch, d_app=None, d_shape=None) -> dict[str, torch.Tensor]:
        """The named terms for generated images ``fake`` of ``batch``, and their ``G_total``.

        ``d_app`` and ``d_shape`` (the appearance and shape discriminators) are needed when
        ``lambda_gan`` > 0; ``batch["tgt_mask"]`` (`PairDataset` with ``body_masks``) when
        ``lambda_mask_l1`` > 0. A term whose weight is 0 is neither computed nor returned.
        """
        cfg = self.cfg
        terms: dict[str, torch.Tensor] = {}
        total = fake.new_zeros(())
        if cfg.lambda_gan > 0:
            conditions = {"shape": (d_shape, batch["tgt_pose"]), "app": (d_app, batch["src_img"])}
            for name, (disc, condition) in conditions.items():
                if cfg.lambda_feature_match == 0:
                    terms[f"G_gan_{name}"] = self.gan(disc(torch.cat([fake, condition], 1)), True)
                    continue
                inner, prediction = disc.features(torch.cat([fake, condition], 1))
                terms[f"G_gan_{name}"] = self.gan(prediction, True)
                with torch.no_grad():
                    real_inner, _ = disc.features(torch.cat([batch["tgt_img"], condition], 1))
                terms[f"G_fm_{name}"] = feature_matching(inner, real_inner)
            total = total + cfg.lambda_gan * (terms["G_gan_shape"] + terms["G_gan_app"]) / 2
            if cfg.lambda_feature_match > 0:
                fm = (terms["G_fm_shape"] + terms["G_fm_app"]) / 2
                total = total + cfg.lambda_feature_match * fm
        if cfg.lambda_l1 > 0:
            terms["G_l1"] = F.l1_loss(fake, batch["tgt_img"])
            total = total + cfg.lambda_l1 * terms["G_l1"]
        if cfg.lambda_mask_l1 > 0:
            terms["G_mask_l1"] = masked_l1(fake, batch["tgt_img"], batch["tgt_mask"])
            total = total + cfg.lambda_mask_l1 * terms["G_mask_l1"]
        if self.perceptual is not None:
            terms["G_perceptual"] = self.perceptual(fake, batch["tgt_img"])
            total = total + cfg.lambda_perceptual * terms["G_perceptual"]
        terms["G_total"] = total
        return terms


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the pixels where ``mask`` [B, 1, H, W] is 1, all channels.

    An empty mask (no visible joints) adds nothing.
    """
    mask = mask.to(fake.dtype)
    area = mask.sum() * fake.shape[1]
    return ((fake - real).abs() * mask).sum() / area.clamp(min=1)


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 distance between a discriminator's features of fake and real."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)) / len(fake)


def discriminator_step(
    gan: GANLoss,
    disc: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_gan: float,
    scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Back-propagate 0.5 * lambda_gan * (L(D(real), real) + L(D(fake), fake)) into ``disc``.

    Real and fake go through separate forward passes, each followed by its backward: BatchNorm
    statistics stay apart (as in the authors' code) and DistributedDataParallel sees one forward
    per backward. Returns the two terms (detached) for logging.

    Args:
        scale: applied to each loss before its backward pass (fp16's ``GradScaler.scale``).
    """
    scale = scale or (lambda loss: loss)
    real_loss = 0.5 * lambda_gan * gan(disc(real), True)
    scale(real_loss).backward()
    fake_loss = 0.5 * lambda_gan * gan(disc(fake.detach()), False)
    scale(fake_loss).backward()
    return {"real": real_loss.detach(), "fake": fake_loss.detach()}
