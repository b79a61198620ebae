import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_reference, tiny_overrides
from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.files import generated_name as output_name
from posetransfer.generate import generate
from posetransfer.pose import read_pairs
from posetransfer.train import train


@pytest.fixture(scope="module")
def tiny_run(tiny_root, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return train(
        load_config("synthetic", tiny_overrides(tiny_root, runs, **{"train.iterations": 1}))
    )


def test_output_name():
    assert output_name("0001_c1s1_01.jpg", "0001_c2s1_03.jpg") == "0001_c1s1_01___0001_c2s1_03.png"


def test_generate_writes_one_png_per_pair(tiny_root, tiny_run, tmp_path):
    pairs = read_pairs(tiny_root / "synthetic-pairs-test.csv")
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tiny_run),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path / "gen"),
            "--strips",
            str(tmp_path / "strips"),
        ]
    )
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert names == sorted(output_name(a, b) for a, b in pairs)
    img = Image.open(tmp_path / "gen" / names[0])
    assert img.size == (64, 128) and img.mode == "RGB"
    strip = Image.open(tmp_path / "strips" / names[0])
    assert strip.height == 128 and strip.width >= 5 * 64


def test_generate_matches_the_model_and_skips_existing(tiny_root, tiny_run, tmp_path):
    from posetransfer.checkpoint import load_generator
    from posetransfer.data.datasets import tensor_to_image
    from posetransfer.generate import dataset_for

    paths = generate(
        tiny_run,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
        tmp_path,
        limit=2,
        progress=False,
    )
    model, info = load_generator(tiny_run)
    item = dataset_for(
        info,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
    )[0]
    with torch.no_grad():
        fake = model(item["src_img"][None], item["src_pose"][None], item["tgt_pose"][None])[0]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), tensor_to_image(fake))
    before = paths[0].stat().st_mtime_ns
    generate(
        tiny_run,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
        tmp_path,
        limit=3,
        skip_existing=True,
        progress=False,
    )
    assert paths[0].stat().st_mtime_ns == before
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_generate_with_an_authors_checkpoint(tiny_root, tmp_path):
    ref = require_reference("patn_market_ngf8.pt")
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(torch.load(ref, weights_only=False)["state_dict"], pth)
    paths = generate(
        pth,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
        tmp_path / "gen",
        limit=2,
        progress=False,
    )
    assert len(paths) == 2 and Image.open(paths[0]).size == (64, 128)


def test_cli_errors_are_one_line(tiny_root, tmp_path, capsys):
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tmp_path / "nope"),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert (
        rc == 2
        and err.strip()
        == f"posetransfer generate: error: checkpoint not found: {tmp_path / 'nope'}"
    )
