import json

from PIL import Image

from posetransfer.data.synthetic import SyntheticConfig
from posetransfer.demo import run_demo


def test_demo_writes_samples_and_metrics(tmp_path):
    syn = SyntheticConfig(n_train_ids=3, n_test_ids=2, images_per_id=3, max_test_pairs=6)
    over = [
        "model.generator=patn_tiny",
        "train.iterations=2",
        "train.batch_size=2",
        "train.sample_every=2",
        "train.checkpoint_every=2",
    ]
    m = run_demo(tmp_path, minutes=5, overrides=over, progress=False, synthetic=syn)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == m
    for key in ("ssim", "l1", "ssim_copy_source", "l1_copy_source"):
        assert isinstance(m[key], float)
    assert 0 < m["ssim_copy_source"] < 1 and m["l1_copy_source"] > 0
    assert m["pairs"] == 6 and m["iterations"] == 2
    assert len(list((tmp_path / "generated").glob("*___*.png"))) == 6
    # One table row per model beside the copy baseline, each with the four scores.
    rows = ["copy condition image", "demo model", "PATN", "APATN"]
    assert list(m["table"]) == rows
    assert m["bundled"] == {"PATN": "synthetic-patn", "APATN": "synthetic-apatn"}
    for scores in m["table"].values():
        assert set(scores) == {"ssim", "mask_ssim", "l1", "mask_l1"}
    assert m["table"]["demo model"]["ssim"] == m["ssim"]
    for name in ("synthetic-patn", "synthetic-apatn"):
        assert len(list((tmp_path / f"generated-{name}").glob("*___*.png"))) == 6
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {row} |" in table for row in rows)
    # Two groups of rows side by side, each: condition, pose, 3 models, truth.
    grid = Image.open(tmp_path / "samples.png")
    assert grid.width >= 2 * 6 * 64 and grid.height >= 3 * 128
