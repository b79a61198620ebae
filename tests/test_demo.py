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
    assert saved == m.to_dict()
    for key in ("ssim", "l1", "ssim_copy_source", "l1_copy_source"):
        assert isinstance(getattr(m, key), float)
    assert 0 < m.ssim_copy_source < 1 and m.l1_copy_source > 0
    assert m.pairs == 6 and m.iterations == 2
    assert len(list((tmp_path / "generated").glob("*___*.png"))) == 6
    # One table row per model beside the copy baseline, each with the four scores.
    rows = ["copy condition image", "demo model", "PATN", "APATN"]
    assert list(m.table) == rows
    assert m.bundled == {"PATN": "synthetic-patn", "APATN": "synthetic-apatn"}
    for scores in m.table.values():
        assert set(scores) == {"ssim", "mask_ssim", "l1", "mask_l1"}
    assert m.table["demo model"]["ssim"] == m.ssim
    for name in ("synthetic-patn", "synthetic-apatn"):
        assert len(list((tmp_path / f"generated-{name}").glob("*___*.png"))) == 6
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {row} |" in table for row in rows)
    # Two groups of rows side by side, each: condition, pose, 3 models, truth.
    grid = Image.open(tmp_path / "samples.png")
    assert grid.width >= 2 * 6 * 64 and grid.height >= 3 * 128


def test_demo_report_dict_keeps_the_metrics_json_keys_in_order():
    import dataclasses

    import pytest

    from posetransfer.demo import DemoReport

    keys = (
        "ssim l1 ssim_copy_source l1_copy_source table bundled pairs l1_scale ssim_protocol "
        "iterations train_seconds total_seconds run_dir machine beats_copy_source"
    ).split()
    assert [f.name for f in dataclasses.fields(DemoReport)] == keys
    table = {"demo model": {"ssim": 0.5, "mask_ssim": 0.6, "l1": 9.0, "mask_l1": 8.0}}
    r = DemoReport(**{k: 0 for k in keys} | {"table": table, "bundled": {"PATN": "p"}})
    d = r.to_dict()
    assert list(d) == keys and d["table"] == table and d["table"] is not table
    assert json.loads(json.dumps(d)) == d
    with pytest.deprecated_call():
        assert r["table"] is table
