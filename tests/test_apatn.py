"""APATN: paper parameter counts, attention paths, memory behaviour, shapes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.analysis.attention import (
    apatb_attention,
    heat_colormap,
    keypoint_mask,
    overlay_heatmap,
    query_cells,
    save_attention_maps,
)
from posetransfer.cli import main
from posetransfer.errors import InputError
from posetransfer.models import APATB, APATN, count_parameters, create_generator
from posetransfer.models.apatn import pose_attention
from posetransfer.pose import keypoints_to_heatmaps, write_annotations, write_pairs


def _inputs(batch: int = 2, h: int = 32, w: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    src = torch.rand(batch, 18, h, w, generator=g)
    tgt = torch.rand(batch, 18, h, w, generator=g)
    return image, src, tgt


def test_one_apatb_has_the_papers_parameter_count():
    with torch.device("meta"):
        block = APATB(256, "instance")
    assert count_parameters(block) == pytest.approx(2.76e6, rel=0.02)


def test_apatn_has_the_papers_parameter_count():
    with torch.device("meta"):
        model = create_generator("apatn_fashion")
    assert len(model.blocks) == 5
    assert count_parameters(model) == pytest.approx(16.93e6, rel=0.03)


def test_blocks_are_a_module_list_of_apatbs():
    model = create_generator("apatn_tiny", n_blocks=3)
    assert isinstance(model.blocks, torch.nn.ModuleList)
    assert [type(b) for b in model.blocks] == [APATB] * 3


def test_public_class_builds_from_keyword_arguments():
    model = APATN(norm="batch", ngf=8, n_blocks=2, dropout=0.0)
    out = model(*_inputs())
    assert out.shape == (2, 3, 32, 16)
    assert isinstance(model.image_encoder[2], torch.nn.BatchNorm2d)


def test_forward_returns_one_attention_matrix_per_block_with_unit_rows():
    model = create_generator("apatn_tiny").eval()
    with torch.no_grad():
        out, attn = model(*_inputs(), return_attention=True)
    assert out.shape == (2, 3, 32, 16)
    hw = (32 // 4) * (16 // 4)
    assert [a.shape for a in attn] == [(2, hw, hw)] * 2
    for a in attn:
        torch.testing.assert_close(a.sum(-1), torch.ones(2, hw))


def test_fused_attention_matches_unscaled_softmax_reference():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(2, 50, 8, generator=g), torch.randn(2, 50, 8, generator=g), None
    v = torch.randn(2, 50, 16, generator=g)
    reference = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v  # no 1/sqrt(d)
    torch.testing.assert_close(pose_attention(q, k, v), reference, rtol=1e-5, atol=1e-5)


def test_explicit_and_fused_paths_give_the_same_image():
    model = create_generator("apatn_tiny", ngf=8).eval()
    inputs = _inputs()
    with torch.no_grad():
        fused = model(*inputs)
        explicit, _ = model(*inputs, return_attention=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


_MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from posetransfer.models.apatn import APATB

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    torch.set_num_threads(1)
    torch.manual_seed(0)
    block = APATB(16, "instance", dropout=0.0).eval()
    codes = [torch.randn(1, 16, 96, 96) for _ in range(3)]  # HW = 9216: A would be 324 MB
    with torch.no_grad():
        block(*[c[..., :8, :8] for c in codes])  # load the kernels before measuring
        base = peak_mb()
        block(*codes)
        fused = peak_mb()
        block(*codes, return_attention=True)
        explicit = peak_mb()
    print(fused - base, explicit - fused)
    """
)


def test_fused_attention_does_not_allocate_the_hw_by_hw_matrix():
    # ru_maxrss is a process-wide high-water mark, so measure in a fresh interpreter.
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    fused_mb, explicit_mb = map(float, result.stdout.split())
    assert fused_mb < 60, f"fused path grew the peak by {fused_mb:.0f} MB"
    # The probe can see a materialised matrix: the explicit path must show it.
    assert explicit_mb > 250, f"explicit path grew the peak by only {explicit_mb:.0f} MB"


def test_without_res_the_blocks_have_no_pose_update():
    model = APATN(ngf=8, n_blocks=2, use_res=False)
    assert all(b.conv_s is None for b in model.blocks)


def test_unknown_fusion_is_rejected():
    with pytest.raises(ValueError, match="fusion"):
        APATN(ngf=8, n_blocks=1, fusion="mul")


def test_heatmaps_of_the_wrong_size_are_rejected():
    image, src, tgt = _inputs()
    with pytest.raises(ValueError, match="target_heatmaps"):
        create_generator("apatn_tiny")(image, src, tgt[:, :17])


# --------------------------------------------------------------------------------------------
# Attention maps (posetransfer.analysis.attention, `posetransfer attention`)

H, W = 64, 32
KPS = np.array(
    [[8, 16], [13, 16], [13, 11], [21, 9], [28, 8], [13, 21], [21, 23], [28, 24], [31, 12],
     [43, 12], [55, 12], [31, 19], [43, 19], [55, 19], [7, 15], [7, 17], [8, 13], [8, 19]]
)  # fmt: skip


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


def test_patn_masks_give_one_png_per_block_and_a_strip(tmp_path):
    model = create_generator("patn_tiny", n_blocks=3)
    src_img, src_pose, tgt_pose, tgt_img = _pair()
    paths = save_attention_maps(model, src_img, src_pose, tgt_pose, tmp_path, tgt_img=tgt_img)
    names = sorted(p.name for p in paths)
    assert names == ["pair.png", "patb_mask_block1.png", "patb_mask_block2.png",
                     "patb_mask_block3.png", "patb_masks.png"]  # fmt: skip
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


def test_attention_command_renders_a_pair_of_a_dataset(tmp_path, monkeypatch):
    import posetransfer.checkpoint

    names = _tiny_dataset(tmp_path / "data")
    info = SimpleNamespace(height=H, width=W, sigma=6.0, legacy_heatmaps=False)
    monkeypatch.setattr(
        posetransfer.checkpoint,
        "load_generator",
        lambda path, device="cpu": (create_generator("apatn_tiny"), info),
    )
    data = tmp_path / "data"
    common = ["attention", "--checkpoint", str(tmp_path / "ckpt"), "--dataset", str(data),
              "--annotations", str(data / "ann.csv")]  # fmt: skip
    out = tmp_path / "out"
    assert main([*common, "--pairs", str(tmp_path / "data" / "pairs.csv"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["apatb_body.png", "pair.png"]
    pair = f"{names[1]},{names[0]}"
    assert main([*common, "--pair", pair, "--points", "10,5", "--out", str(out)]) == 0
    assert (out / "apatb_point1.png").is_file()


def test_attention_command_names_a_bad_index(tmp_path, monkeypatch, capsys):
    import posetransfer.checkpoint

    _tiny_dataset(tmp_path / "data")
    info = SimpleNamespace(height=H, width=W, sigma=6.0, legacy_heatmaps=False)
    monkeypatch.setattr(
        posetransfer.checkpoint,
        "load_generator",
        lambda path, device="cpu": (create_generator("patn_tiny"), info),
    )
    code = main(["attention", "--checkpoint", "x", "--dataset", str(tmp_path / "data"),
                 "--annotations", str(tmp_path / "data" / "ann.csv"),
                 "--pairs", str(tmp_path / "data" / "pairs.csv"), "--index", "5",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "--index 5" in capsys.readouterr().err
