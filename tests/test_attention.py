"""Attention maps of PATN and APATN blocks: posetransfer.analysis.attention and its command."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.analysis.attention import (
    apatb_attention,
    heat_colormap,
    keypoint_mask,
    load_pair,
    overlay_heatmap,
    patb_masks,
    query_cells,
    save_attention_maps,
)
from posetransfer.cli import main
from posetransfer.errors import InputError
from posetransfer.models import create_generator
from posetransfer.models.blocks import eval_mode
from posetransfer.pose import (
    MISSING,
    KeypointWarning,
    keypoints_to_heatmaps,
    write_annotations,
    write_pairs,
)

H, W = 64, 32
KPS = np.array(
    [
        [8, 16],
        [13, 16],
        [13, 11],
        [21, 9],
        [28, 8],
        [13, 21],
        [21, 23],
        [28, 24],
        [31, 12],
        [43, 12],
        [55, 12],
        [31, 19],
        [43, 19],
        [55, 19],
        [7, 15],
        [7, 17],
        [8, 13],
        [8, 19],
    ]
)


def _pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src_img = torch.rand(3, H, W, generator=g) * 2 - 1
    tgt_img = torch.rand(3, H, W, generator=g) * 2 - 1
    tgt_kps = KPS.copy()
    tgt_kps[4] = [5, 3]  # raised right wrist
    return src_img, keypoints_to_heatmaps(KPS, H, W), keypoints_to_heatmaps(tgt_kps, H, W), tgt_img


def test_heat_colormap_runs_from_dark_blue_to_dark_red():
    cold, hot = heat_colormap(np.array([0.0, 1.0]))
    assert cold[2] > 100 and cold[:2].max() == 0
    assert hot[0] > 100 and hot[1:].max() == 0


def test_overlay_keeps_the_image_shape_and_handles_a_constant_map():
    image = np.full((H, W, 3), 128, np.uint8)
    out = overlay_heatmap(image, np.ones((H, W)))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8


def test_keypoint_mask_covers_joints_and_torso_only():
    mask = keypoint_mask(KPS, H, W)
    assert mask[13, 16] and mask[22, 16]  # neck, middle of the torso
    assert not mask[60, 2] and not mask[0, 0]
    assert not keypoint_mask(np.full((18, 2), -1), H, W).any()


def test_query_points_map_to_their_code_cell():
    cells = query_cells((16, 8), (H, W), points=[(0, 0), (63, 31), (20, 9)])
    assert [c.tolist() for c in cells] == [[0], [16 * 8 - 1], [5 * 8 + 2]]
    with pytest.raises(InputError, match="outside"):
        query_cells((16, 8), (H, W), points=[(64, 0)])


def test_point_attention_is_the_row_of_the_alignment_matrix():
    model = create_generator("apatn_tiny")
    src_img, src_pose, tgt_pose, _ = _pair()
    cell = query_cells((16, 8), (H, W), points=[(20, 9)])
    _, maps = apatb_attention(model, src_img, src_pose, tgt_pose, cell)
    with torch.no_grad():
        _, attn = model.eval()(src_img[None], src_pose[None], tgt_pose[None], True)
    assert len(maps) == 1 and len(maps[0]) == len(model.blocks)
    row = attn[1][0, 5 * 8 + 2].view(1, 1, 16, 8)
    expected = torch.nn.functional.interpolate(row, size=(H, W), mode="bilinear")[0, 0]
    np.testing.assert_allclose(maps[0][1], expected.numpy(), rtol=1e-5, atol=1e-7)


def test_patb_masks_are_the_channel_means_of_the_blocks_attention():
    model = create_generator("patn_tiny")
    src_img, src_pose, tgt_pose, _ = _pair()
    _, maps = patb_masks(model, src_img, src_pose, tgt_pose)
    with torch.no_grad():
        _, attn = model.eval()(src_img[None], src_pose[None], tgt_pose[None], True)
    assert len(maps) == len(model.blocks)
    mean = attn[1][0].mean(0).view(1, 1, 16, 8)
    expected = torch.nn.functional.interpolate(mean, size=(H, W), mode="bilinear")[0, 0]
    np.testing.assert_allclose(maps[1], expected.numpy(), rtol=1e-5, atol=1e-7)


def test_each_reader_refuses_the_other_kind_of_attention():
    src_img, src_pose, tgt_pose, _ = _pair()
    with pytest.raises(InputError, match="PATB masks need a PATN generator, got APATN"):
        patb_masks(create_generator("apatn_tiny"), src_img, src_pose, tgt_pose)
    with pytest.raises(InputError, match="APATB attention needs an APATN generator, got PATN"):
        apatb_attention(create_generator("patn_tiny"), src_img, src_pose, tgt_pose, [[0]])


def test_patn_masks_give_one_png_per_block_and_a_strip(tmp_path):
    model = create_generator("patn_tiny", n_blocks=3)
    src_img, src_pose, tgt_pose, tgt_img = _pair()
    paths = save_attention_maps(model, src_img, src_pose, tgt_pose, tmp_path, tgt_img=tgt_img)
    names = sorted(p.name for p in paths)
    assert names == [
        "pair.png",
        "patb_mask_block1.png",
        "patb_mask_block2.png",
        "patb_mask_block3.png",
        "patb_masks.png",
    ]
    scale = 256 // H
    with Image.open(tmp_path / "patb_masks.png") as im:  # target + 3 blocks, 2 px gaps
        assert im.size == (4 * W * scale + 3 * 2, H * scale + 14)


def test_apatn_maps_per_point_and_over_the_body(tmp_path):
    model = create_generator("apatn_tiny")
    src_img, src_pose, tgt_pose, tgt_img = _pair()
    paths = save_attention_maps(
        model, src_img, src_pose, tgt_pose, tmp_path / "pts", tgt_img, points=[(5, 3), (40, 12)]
    )
    assert [p.name for p in paths] == ["pair.png", "apatb_point1.png", "apatb_point2.png"]
    paths = save_attention_maps(
        model, src_img, src_pose, tgt_pose, tmp_path / "body", tgt_img, tgt_kps=KPS
    )
    assert [p.name for p in paths] == ["pair.png", "apatb_body.png"]
    with Image.open(paths[1]) as im:
        assert im.mode == "RGB" and im.width > 3 * W


def test_generators_without_attention_are_refused(tmp_path):
    model = create_generator("resnet5_fashion", ngf=4, n_blocks=1)
    src_img, src_pose, tgt_pose, _ = _pair()
    with pytest.raises(InputError, match="PATN and APATN"):
        save_attention_maps(model, src_img, src_pose, tgt_pose, tmp_path)


def _tiny_dataset(root):
    rng = np.random.default_rng(0)
    names = ["0001_c1_a.jpg", "0001_c2_b.jpg"]
    (root / "test").mkdir(parents=True)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "test" / name)
    write_annotations(root / "ann.csv", {names[0]: KPS, names[1]: KPS[::-1].copy()})
    write_pairs(root / "pairs.csv", [(names[0], names[1])])
    return names


@pytest.mark.parametrize("size", [(H, W), None])
def test_load_pair_drops_joints_outside_the_image_like_the_dataset_and_warns(tmp_path, size):
    from posetransfer.data.datasets import PairDataset

    names = _tiny_dataset(tmp_path)
    off = KPS[::-1].copy()
    off[4] = (H + 3, 10)  # the target's right wrist below the image
    write_annotations(tmp_path / "ann.csv", {names[0]: KPS, names[1]: off})
    with pytest.warns(KeypointWarning, match=rf"ann.csv: 1 row.*{H}x{W} image.*right_wrist"):
        item = load_pair(tmp_path, tmp_path / "ann.csv", tmp_path / "pairs.csv", size=size)
    with pytest.warns(KeypointWarning):
        expected = PairDataset(
            tmp_path / "test", tmp_path / "ann.csv", tmp_path / "pairs.csv", H, W
        )[0]
    assert tuple(item["tgt_kps"][4]) == (MISSING, MISSING)
    for key in ("src_kps", "tgt_kps", "src_pose", "tgt_pose", "src_img", "tgt_img"):
        np.testing.assert_array_equal(np.asarray(item[key]), np.asarray(expected[key]))


def test_eval_mode_restores_the_training_mode():
    model = create_generator("patn_tiny", n_blocks=1).train()
    with eval_mode(model):
        assert not model.training
    assert model.training


def test_attention_command_renders_a_pair_of_a_dataset(tmp_path, monkeypatch):
    import posetransfer.runtime.load

    names = _tiny_dataset(tmp_path / "data")
    info = SimpleNamespace(height=H, width=W, sigma=6.0, legacy_heatmaps=False)
    monkeypatch.setattr(
        posetransfer.runtime.load,
        "load_generator",
        lambda spec, **options: (create_generator("apatn_tiny"), info),
    )
    data = tmp_path / "data"
    common = [
        "attention",
        "--checkpoint",
        str(tmp_path / "ckpt"),
        "--dataset",
        str(data),
        "--annotations",
        str(data / "ann.csv"),
    ]
    out = tmp_path / "out"
    assert main([*common, "--pairs", str(tmp_path / "data" / "pairs.csv"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["apatb_body.png", "pair.png"]
    pair = f"{names[1]},{names[0]}"
    assert main([*common, "--pair", pair, "--points", "10,5", "--out", str(out)]) == 0
    assert (out / "apatb_point1.png").is_file()


def test_attention_command_names_a_bad_index(tmp_path, monkeypatch, capsys):
    import posetransfer.runtime.load

    _tiny_dataset(tmp_path / "data")
    info = SimpleNamespace(height=H, width=W, sigma=6.0, legacy_heatmaps=False)
    monkeypatch.setattr(
        posetransfer.runtime.load,
        "load_generator",
        lambda spec, **options: (create_generator("patn_tiny"), info),
    )
    code = main(
        [
            "attention",
            "--checkpoint",
            "x",
            "--dataset",
            str(tmp_path / "data"),
            "--annotations",
            str(tmp_path / "data" / "ann.csv"),
            "--pairs",
            str(tmp_path / "data" / "pairs.csv"),
            "--index",
            "5",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "--index 5" in capsys.readouterr().err


def test_attention_command_cuda_without_cuda_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    _tiny_dataset(tmp_path / "data")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(
        [
            "attention",
            "--checkpoint",
            "x",
            "--dataset",
            str(tmp_path / "data"),
            "--annotations",
            str(tmp_path / "data" / "ann.csv"),
            "--pairs",
            str(tmp_path / "data" / "pairs.csv"),
            "--device",
            "cuda",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "posetransfer attention: error: --device 'cuda': no CUDA device is available here; "
        "use 'cpu' or 'auto'\n"
    )


def test_attention_command_without_pairs_or_pair_names_both_flags(tmp_path, capsys):
    _tiny_dataset(tmp_path / "data")
    code = main(
        [
            "attention",
            "--checkpoint",
            "x",
            "--dataset",
            str(tmp_path / "data"),
            "--annotations",
            str(tmp_path / "data" / "ann.csv"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--pairs" in err and "--pair FROM,TO" in err


def test_strips_are_written_atomically_leaving_no_partial_file(tmp_path, monkeypatch):
    from posetransfer.core import files

    def disk_full(path, save, *args, **kwargs):
        def partial(f):
            f.write(b"\x89PNG")
            raise OSError(errno.ENOSPC, "No space left on device")

        return real(path, partial, *args, **kwargs)

    real = files.atomic_save
    monkeypatch.setattr(files, "atomic_save", disk_full)
    model = create_generator("patn_tiny", n_blocks=1)
    src_img, src_pose, tgt_pose, tgt_img = _pair()
    with pytest.raises(InputError, match="pair.png: no space left on the device"):
        save_attention_maps(model, src_img, src_pose, tgt_pose, tmp_path, tgt_img=tgt_img)
    assert list(tmp_path.iterdir()) == []
