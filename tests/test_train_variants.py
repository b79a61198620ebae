"""Every registered generator trains through the real training loop and reloads."""

import pytest
import torch

from conftest import tiny_overrides
from posetransfer.config import load_config
from posetransfer.models import list_generators
from posetransfer.runtime.load import load_generator
from posetransfer.train import train


@pytest.mark.parametrize("name", list_generators())
def test_variant_trains_and_reloads(name, tiny_root, tmp_path):
    over = tiny_overrides(
        tiny_root,
        tmp_path,
        **{
            "model.generator": name,
            "model.ngf": 4,
            "model.n_blocks": 2,
            "train.iterations": 2,
            "train.sample_every": 100,
            "loss.lambda_gan": 1,
            "model.ndf": 4,
            "model.discriminator_blocks": 1,
        },
    )
    run = train(load_config("synthetic", over))
    model, info = load_generator(run, device="cpu", precision=None)
    assert info.name == name and info.kwargs == {"ngf": 4, "n_blocks": 2} and info.step == 2
    x = torch.zeros(1, 3, 128, 64)
    with torch.no_grad():
        out = model(x, torch.zeros(1, 18, 128, 64), torch.zeros(1, 18, 128, 64))
    assert out.shape == x.shape and torch.isfinite(out).all()
