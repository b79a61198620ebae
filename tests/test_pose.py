import json
import warnings

import numpy as np
import pytest
import torch

from posetransfer.errors import InputError
from posetransfer.pose import (
    FLIP_PERM,
    JOINT_NAMES,
    KeypointWarning,
    draw_skeleton,
    drop_outside,
    flip_keypoints,
    keypoints_to_heatmaps,
    read_annotations,
    read_openpose_json,
    read_pairs,
    write_annotations,
    write_pairs,
)


def kps_example():
    kps = np.stack([np.arange(18) * 6 + 10, np.arange(18) % 7 * 5 + 20], axis=1)
    kps[16] = -1
    return kps


def test_heatmap_is_the_spec_gaussian():
    kps = kps_example()
    maps = keypoints_to_heatmaps(kps, 128, 64, sigma=6.0)
    assert maps.shape == (18, 128, 64) and maps.dtype == torch.float32
    y0, x0 = kps[3]
    yy, xx = np.mgrid[0:128, 0:64]
    expected = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * 6.0**2))
    np.testing.assert_allclose(maps[3].numpy(), expected, rtol=1e-5, atol=1e-7)
    assert maps[16].abs().sum() == 0  # missing joint


def test_heatmap_batch_matches_single():
    kps = np.stack([kps_example(), kps_example()[::-1]])
    batch = keypoints_to_heatmaps(kps, 32, 24)
    assert batch.shape == (2, 18, 32, 24)
    assert torch.equal(batch[1], keypoints_to_heatmaps(kps[1], 32, 24))


def test_legacy_heatmap_is_one_pixel_per_joint():
    kps = kps_example()
    kps[5] = [200, 10]  # outside the image: nothing survives the truncation
    maps = keypoints_to_heatmaps(kps, 128, 64, legacy_uint8=True)
    gauss = keypoints_to_heatmaps(kps, 128, 64)
    truncated = gauss.numpy().astype(np.uint8).astype(np.float32)
    np.testing.assert_array_equal(maps.numpy(), truncated)
    assert maps[3, kps[3, 0], kps[3, 1]] == 1 and maps[3].sum() == 1
    assert maps[5].sum() == 0 and maps[16].sum() == 0


def test_flip_swaps_sides_and_mirrors_x():
    kps = kps_example()
    flipped = flip_keypoints(kps, 64)
    right_shoulder, left_shoulder = (
        JOINT_NAMES.index("right_shoulder"),
        JOINT_NAMES.index("left_shoulder"),
    )
    assert flipped[right_shoulder, 1] == 63 - kps[left_shoulder, 1]
    assert flipped[right_shoulder, 0] == kps[left_shoulder, 0]
    assert (flip_keypoints(flipped, 64) == kps).all()
    assert sorted(FLIP_PERM) == list(range(18))


def test_annotation_roundtrip(tmp_path):
    ann = {"0001_c1s1_000001_00.jpg": kps_example(), "0002_c1s1_000001_00.jpg": kps_example() + 1}
    path = write_annotations(tmp_path / "a.csv", ann)
    assert path.read_text().splitlines()[0] == "name:keypoints_y:keypoints_x"
    back = read_annotations(path)
    assert list(back) == list(ann)
    for k in ann:
        np.testing.assert_array_equal(back[k], ann[k])


def test_reads_the_public_format_with_spaces(tmp_path):
    ys, xs = list(range(18)), [-1] + list(range(17))
    p = tmp_path / "market-annotation-test.csv"
    p.write_text(f"name:keypoints_y:keypoints_x\n0002_c1s1_000451_03.jpg: {ys}: {xs}\n")
    kps = read_annotations(p)["0002_c1s1_000451_03.jpg"]
    assert (kps[0] == -1).all()  # a joint with one -1 coordinate is missing as a whole
    assert kps[1].tolist() == [1, 0]


@pytest.mark.parametrize(
    "row, message",
    [
        ("a.jpg: [1, 2]: [1, 2]", "row 2: keypoints_y has 2 joints"),
        (
            "a.jpg: [1.5" + ", 1" * 17 + "]: [1" + ", 1" * 17 + "]",
            "row 2: keypoints_y holds a non-integer",
        ),
        ("a.jpg: [1" + ", 1" * 17 + "]", "row 2: expected 3"),
        ("a.jpg: oops: [1]", "row 2: keypoints_y is not a JSON list"),
    ],
)
def test_bad_annotation_rows_name_file_and_row(tmp_path, row, message):
    p = tmp_path / "bad.csv"
    p.write_text("name:keypoints_y:keypoints_x\n" + row + "\n")
    with pytest.raises(InputError, match=message) as e:
        read_annotations(p)
    assert "bad.csv" in str(e.value)


def test_annotation_names_checked_against_images(tmp_path):
    p = write_annotations(tmp_path / "a.csv", {"missing.jpg": kps_example()})
    with pytest.raises(InputError, match="row 2: image 'missing.jpg' not found"):
        read_annotations(p, image_dir=tmp_path)


def test_pairs_roundtrip_and_unknown_names(tmp_path):
    p = write_pairs(tmp_path / "p.csv", [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg")])
    assert p.read_text().splitlines()[0] == "from,to"
    assert read_pairs(p, known={"a.jpg", "b.jpg"}) == [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg")]
    with pytest.raises(InputError, match="p.csv, row 2: image 'a.jpg' is not in the annotation"):
        read_pairs(p, known={"b.jpg"})


def test_pairs_missing_header(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("a.jpg,b.jpg\n")
    with pytest.raises(InputError, match="header 'from,to'"):
        read_pairs(p)


def test_openpose_json(tmp_path):
    flat = []
    for i in range(18):
        flat += [10.4 + i, 50.6 + 2 * i, 0.0 if i == 7 else 0.9]
    p = tmp_path / "x_keypoints.json"
    p.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": flat}]}))
    kps = read_openpose_json(p)
    assert kps[0].tolist() == [51, 10]  # (y, x), rounded
    assert kps[7].tolist() == [-1, -1]
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [0.0] * 75}]}))
    with pytest.raises(InputError, match="BODY_25"):
        read_openpose_json(p)


def test_draw_skeleton_draws_limbs():
    img = draw_skeleton(kps_example(), 128, 64)
    assert img.shape == (128, 64, 3) and img.dtype == np.uint8
    assert (img.sum(-1) > 0).sum() > 100
    assert draw_skeleton(np.full((18, 2), -1), 128, 64).sum() == 0


# --------------------------------------------------------------------------------------------
# Encodings and line endings, round trips


def test_annotation_csv_with_byte_order_mark_and_windows_line_endings(tmp_path):
    ys, xs = list(range(18)), list(range(18, 36))
    text = f"name:keypoints_y:keypoints_x\r\na.jpg: {ys}: {xs}\r\nb.jpg: {xs}: {ys}\r\n"
    p = tmp_path / "ann.csv"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as spreadsheet programs save "CSV UTF-8"
    ann = read_annotations(p)
    assert list(ann) == ["a.jpg", "b.jpg"]
    assert ann["a.jpg"][:, 0].tolist() == ys and ann["a.jpg"][:, 1].tolist() == xs


def test_annotation_csv_with_old_mac_line_endings(tmp_path):
    p = tmp_path / "ann.csv"
    p.write_text(f"name:keypoints_y:keypoints_x\ra.jpg: {[1] * 18}: {[2] * 18}\r", newline="")
    assert read_annotations(p)["a.jpg"][0].tolist() == [1, 2]


def test_pairs_csv_with_byte_order_mark_and_windows_line_endings(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_bytes(b"\xef\xbb\xbffrom,to\r\na.jpg,b.jpg\r\nb.jpg,a.jpg\r\n")
    assert read_pairs(p) == [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg")]


def test_openpose_json_with_byte_order_mark(tmp_path):
    p = tmp_path / "x_keypoints.json"
    flat = sum(([10.0 + i, 20.0 + i, 0.9] for i in range(18)), [])
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps({"people": [{"pose_keypoints_2d": flat}]}).encode())
    assert read_openpose_json(p)[0].tolist() == [20, 10]


def test_annotation_file_that_is_not_utf8_names_the_file(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes("name:keypoints_y:keypoints_x\ncafé.jpg: [1]: [1]\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin1.csv: not a UTF-8 text file"):
        read_annotations(p)


def test_pairs_file_that_is_not_utf8_names_the_file(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes("from,to\ncafé.jpg,b.jpg\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin1.csv: not a UTF-8 text file"):
        read_pairs(p)


def test_annotation_row_with_an_empty_name_names_the_row(tmp_path):
    p = tmp_path / "ann.csv"
    p.write_text(f"name:keypoints_y:keypoints_x\n : {[1] * 18}: {[1] * 18}\n")
    with pytest.raises(InputError, match="ann.csv, row 2: empty image name"):
        read_annotations(p)


def test_annotation_round_trip_keeps_unusual_names(tmp_path):
    names = ["my photo (1).jpg", "café,ünïcode.png", "a;b'c\".jpg", "form\x0cfeed\u2028.jpg"]
    ann = {n: kps_example() + i for i, n in enumerate(names)}
    back = read_annotations(write_annotations(tmp_path / "a.csv", ann))
    assert list(back) == names
    for n in names:
        np.testing.assert_array_equal(back[n], ann[n])


def test_write_annotations_refuses_a_name_with_a_colon_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match="'a:b.jpg' cannot be written to an annotation file"):
        write_annotations(tmp_path / "a.csv", {"ok.jpg": kps_example(), "a:b.jpg": kps_example()})
    assert list(tmp_path.iterdir()) == []


def test_write_annotations_refuses_a_name_that_is_not_utf8_and_writes_nothing(tmp_path):
    name = "caf\udcff.jpg"  # how Python holds the Linux file name b"caf\xff.jpg"
    with pytest.raises(
        InputError,
        match=r"'caf\\udcff.jpg' cannot be written to an annotation "
        r"file: names must be valid UTF-8",
    ):
        write_annotations(tmp_path / "a.csv", {"ok.jpg": kps_example(), name: kps_example()})
    assert list(tmp_path.iterdir()) == []


def test_legacy_heatmap_keeps_the_last_row_and_column_and_drops_one_past_them():
    kps = np.full((18, 2), -1)
    kps[0], kps[1], kps[2] = [127, 63], [128, 10], [10, 64]
    maps = keypoints_to_heatmaps(kps, 128, 64, legacy_uint8=True)
    assert maps[0, 127, 63] == 1 and maps[0].sum() == 1
    assert maps[1].sum() == 0 and maps[2].sum() == 0


def test_pairs_round_trip_keeps_names_with_commas_and_quotes(tmp_path):
    pairs = [("a,b.jpg", 'c"d.jpg'), ("my photo.jpg", "café.jpg")]
    assert read_pairs(write_pairs(tmp_path / "p.csv", pairs)) == pairs


@pytest.mark.parametrize("name", ["", " padded.jpg", "padded.jpg "])
def test_write_pairs_refuses_names_that_would_not_read_back(tmp_path, name):
    with pytest.raises(InputError, match="cannot be written to a pairs file"):
        write_pairs(tmp_path / "p.csv", [("a.jpg", name)])
    assert not (tmp_path / "p.csv").exists()


# --------------------------------------------------------------------------------------------
# Joints outside the image


def test_drop_outside_marks_only_off_image_joints_missing():
    kps = kps_example()
    kps[3] = (130, 5)  # below a 128-row image
    kps[4] = (5, -4)  # left of it
    kps[6] = (127, 63)  # the last pixel: inside
    out = drop_outside(kps, 128, 64)
    assert out[3].tolist() == [-1, -1] and out[4].tolist() == [-1, -1]
    keep = [j for j in range(18) if j not in (3, 4)]
    np.testing.assert_array_equal(out[keep], kps[keep])
    assert kps[3].tolist() == [130, 5]  # the input is left as it was


def test_heatmaps_still_draw_the_tail_of_a_joint_outside_the_image():
    kps = np.full((18, 2), -1)
    kps[0] = (130, 10)  # two rows below a 128-row image
    maps = keypoints_to_heatmaps(kps, 128, 64, sigma=6.0)
    assert maps[0, 127, 10] == pytest.approx(np.exp(-9 / 72), rel=1e-5)


def test_joints_off_the_image_warn_once_per_file_with_count_and_first_rows(tmp_path):
    ann = {f"{i}.jpg": kps_example() for i in range(100)}
    for i in (1, 2, 3, 5):
        ann[f"{i}.jpg"][[3, 4]] = (130, 66)  # two joints just off a 128x64 image in 4 rows
    path = write_annotations(tmp_path / "ann.csv", ann)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_annotations(path, image_size=(128, 64))
    assert len(caught) == 1 and issubclass(caught[0].category, KeypointWarning)
    message = str(caught[0].message)
    assert message.startswith(f"{path}: 4 row(s) place joints outside the 128x64 image: ")
    assert "row 3 (1.jpg: right_elbow, right_wrist)" in message
    assert "row 5 (3.jpg" in message and "5.jpg" not in message and message.endswith(", ...")


@pytest.mark.parametrize("stray", [(200, 70), (100, 170)])
def test_annotations_of_another_resolution_are_refused_with_the_sizes(tmp_path, stray):
    ann = {f"{i}.jpg": kps_example() for i in range(6)}
    ann["1.jpg"][[3, 4]] = stray  # far beyond a 128x64 image: written for larger images
    path = write_annotations(tmp_path / "ann.csv", ann)
    with pytest.raises(InputError) as e:
        read_annotations(path, image_size=(128, 64))
    assert str(e.value).startswith(f"{path}: the keypoints do not fit the 128x64 images")
    assert ("y=200," if stray[0] == 200 else "x=170;") in str(e.value)


def test_joints_inside_the_image_do_not_warn(tmp_path):
    path = write_annotations(tmp_path / "ann.csv", {"a.jpg": kps_example()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_annotations(path, image_size=(128, 64))
        read_annotations(path)
