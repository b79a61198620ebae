"""One way to load a generator: `posetransfer.load_generator` on every kind of spec.

The ``hf://`` cases read a Hugging Face Hub cache laid out here as huggingface_hub documents it
(``models--owner--name/{blobs,refs,snapshots}``), with ``HF_HUB_OFFLINE=1``: no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import posetransfer
from conftest import require_reference
from posetransfer.checkpoint import GENERATOR_FILE, GeneratorInfo, read_generator
from posetransfer.checkpoint.bundled import pretrained_dir
from posetransfer.cli import main
from posetransfer.errors import InputError
from posetransfer.pretrained.export import write_hub_folder
from posetransfer.runtime.load import load_generator
from test_transfer import write_untrained_checkpoint

COMMIT = "a" * 40
COMMIT_V1 = "b" * 40


def inputs(h: int = 128, w: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(2, 3, h, w, generator=g) * 2 - 1,
        torch.rand(2, 18, h, w, generator=g),
        torch.rand(2, 18, h, w, generator=g),
    )


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def lay_out_hub_cache(
    cache: Path, repo: str, folder: Path, commit: str = COMMIT, refs: tuple[str, ...] = ("main",)
) -> Path:
    """Put ``folder``'s files in a Hub cache as huggingface_hub does: each file once under
    ``blobs/`` (named by its hash), the snapshot of ``commit`` linking to them, and each ref
    naming the commit. Returns the snapshot folder."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        blob = storage / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    (storage / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return write_untrained_checkpoint(root / "00000-tiny", root / "data")


# --------------------------------------------------------------------------------------------
# Each kind of spec


def test_the_public_names_are_the_runtime_loader():
    assert posetransfer.load_generator is load_generator
    assert posetransfer.GeneratorInfo is GeneratorInfo
    assert {"load_generator", "GeneratorInfo"} <= set(posetransfer.__all__)


def test_a_bundled_name_loads_ready_for_inference_and_as_stored():
    fast, info = load_generator("synthetic-patn", device="cpu", precision="fp32")
    assert fast.backend == "torch" and fast.precision == "fp32"
    assert info.pretrained == "synthetic-patn" and (info.height, info.width) == (128, 64)
    plain, plain_info = load_generator("synthetic-patn", device="cpu", precision=None)
    assert type(plain).__name__ == "PATN" and not plain.training
    assert all(p.dtype == torch.float32 for p in plain.parameters())
    assert plain_info == info
    with torch.no_grad():
        assert torch.allclose(fast(*inputs()), plain(*inputs()), atol=1e-5)


def test_a_run_folder_and_its_checkpoint_folder_load_the_same_generator(run):
    model, info = load_generator(run, device="cpu", precision=None)
    ckpt = run / "checkpoints" / "step-0000000"
    again, again_info = load_generator(ckpt, device="cpu", precision=None)
    assert info == again_info and info.source == str(ckpt) and info.step == 0
    assert info.name == "patn_tiny" and info.pretrained is None
    assert same_weights(model, again)
    # The checkpoint layer reads that one folder and nothing else.
    read, read_info = read_generator(ckpt)
    assert read_info == info and same_weights(read, model)


def test_the_authors_pth_loads_with_the_size_its_norm_implies(tmp_path):
    ref = torch.load(require_reference("patn_market_ngf8.pt"), weights_only=True)
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(ref["state_dict"], pth)
    model, info = load_generator(pth, device="cpu", precision="fp32")
    assert info.name == "patn_market" and (info.height, info.width) == (128, 64)
    assert not info.legacy_heatmaps and info.source == str(pth)
    out = model(ref["P1"], ref["BP1"], ref["BP2"])
    assert (out - ref["output"]).abs().max() < 1e-4  # the authors' own output


@pytest.mark.slow
def test_an_exported_onnx_file_loads_on_onnxruntime(run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from posetransfer.export import export_generator

    onnx = export_generator(run, "onnx", tmp_path / "tiny.onnx")
    model, info = load_generator(onnx, precision="fp32")
    torch_model, torch_info = load_generator(run, device="cpu", precision=None)
    assert model.backend == "onnxruntime" and info.source == str(onnx)
    assert (info.name, info.height, info.width) == (torch_info.name, 128, 64)
    with torch.no_grad():
        assert (model(*inputs()) - torch_model(*inputs())).abs().max() < 1e-4
    with pytest.raises(InputError, match="no torch module to return") as e:
        load_generator(onnx, precision=None)
    assert e.value.arg == "precision"


def test_bad_options_name_the_argument(run):
    with pytest.raises(InputError, match="backend='tensorrt'") as e:
        load_generator(run, backend="tensorrt")
    assert e.value.arg == "backend"
    with pytest.raises(InputError, match="runs an exported model") as e:
        load_generator(run, backend="onnxruntime")
    assert e.value.arg == "backend"
    with pytest.raises(InputError, match="precision=None returns the stored module") as e:
        load_generator(run, precision=None, compile=True)
    assert e.value.arg == "compile"


def test_the_former_name_in_export_is_the_same_call(run):
    from posetransfer.export import load_for_inference

    model, info = load_for_inference(run, "torch", "fp32", "cpu")
    assert model.precision == "fp32" and info == load_generator(run, device="cpu")[1]


# --------------------------------------------------------------------------------------------
# hf://owner/name from the Hub cache


def bundled_hub_folder(tmp_path: Path, name: str = "synthetic-patn") -> Path:
    return write_hub_folder(name, tmp_path / f"hub-{name}", "me/posetransfer-test")


def test_a_hub_repository_loads_offline_from_the_cache(hub_cache, tmp_path):
    lay_out_hub_cache(hub_cache, "me/posetransfer-test", bundled_hub_folder(tmp_path))
    model, info = load_generator("hf://me/posetransfer-test", device="cpu", precision=None)
    bundled, bundled_info = load_generator("synthetic-patn", device="cpu", precision=None)
    assert same_weights(model, bundled)
    assert info.source == f"hf://me/posetransfer-test@{COMMIT}"
    assert (info.name, info.step) == (bundled_info.name, bundled_info.step)
    assert (info.height, info.width) == (128, 64)


def test_a_hub_revision_is_a_ref_or_a_commit(hub_cache, tmp_path):
    lay_out_hub_cache(hub_cache, "me/models", bundled_hub_folder(tmp_path))
    apatn = bundled_hub_folder(tmp_path, "synthetic-apatn")
    lay_out_hub_cache(hub_cache, "me/models", apatn, commit=COMMIT_V1, refs=("v1",))
    assert load_generator("hf://me/models", precision=None)[1].name == "patn_small"
    model, info = load_generator("hf://me/models@v1", device="cpu", precision=None)
    assert info.name == "apatn_small" and info.source == f"hf://me/models@{COMMIT_V1}"
    by_commit = load_generator(f"hf://me/models@{COMMIT_V1}", precision=None)[1]
    assert by_commit.source == info.source


def test_a_repository_missing_from_the_cache_says_how_to_get_it(hub_cache):
    with pytest.raises(InputError) as e:
        load_generator("hf://me/absent")
    message = str(e.value)
    assert "\n" not in message and e.value.arg == "spec"
    assert message.startswith("hf://me/absent: me/absent is not in the Hugging Face Hub cache")
    assert "`hf download me/absent`" in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(InputError, match="`hf download me/absent --revision v2`"):
        load_generator("hf://me/absent@v2")


def test_a_revision_missing_from_the_cache_is_named(hub_cache, tmp_path):
    lay_out_hub_cache(hub_cache, "me/models", bundled_hub_folder(tmp_path))
    with pytest.raises(InputError, match=r"me/models@v9 is not in the Hugging Face Hub cache"):
        load_generator("hf://me/models@v9")


@pytest.mark.parametrize("spec", ["hf://justaname", "hf://a/b/c", "hf://me/models@"])
def test_a_malformed_hub_spec_is_refused(spec):
    with pytest.raises(InputError, match="a Hub model is named hf://owner/name"):
        load_generator(spec)


def test_hub_files_are_checked_against_the_manifest(hub_cache, tmp_path):
    snapshot = lay_out_hub_cache(hub_cache, "me/damaged", bundled_hub_folder(tmp_path))
    blob = (snapshot / GENERATOR_FILE).resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^hf://me/damaged: generator.safetensors is damaged"):
        load_generator("hf://me/damaged")


def test_a_hub_repository_of_other_files_is_not_a_model(hub_cache, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("# some other model\n")
    lay_out_hub_cache(hub_cache, "me/other", other)
    with pytest.raises(InputError, match="not a posetransfer model .no generator.safetensors"):
        load_generator("hf://me/other")


# --------------------------------------------------------------------------------------------
# pretrained export --hub-folder


def test_hub_folder_round_trip_through_the_command(hub_cache, tmp_path, capsys):
    folder = tmp_path / "hub"
    argv = ["pretrained", "export", "--name", "synthetic-apatn", "--hub-folder", str(folder)]
    assert main([*argv, "--hub-repo", "me/apatn"]) == 0
    assert capsys.readouterr().out == f"wrote {folder}\n"
    bundled = pretrained_dir("synthetic-apatn")
    names = {"README.md", "card.json", "config.yaml", "generator.safetensors", "manifest.json"}
    assert {p.name for p in folder.iterdir()} == names
    for name in names - {"README.md"}:
        assert (folder / name).read_bytes() == (bundled / name).read_bytes(), name
    lay_out_hub_cache(hub_cache, "me/apatn", folder)
    model, info = load_generator("hf://me/apatn", device="cpu", precision=None)
    stored, _ = load_generator("synthetic-apatn", device="cpu", precision=None)
    assert same_weights(model, stored) and info.name == "apatn_small"


def test_the_hub_model_card_carries_the_hubs_metadata_and_the_cards_metrics(tmp_path):
    folder = bundled_hub_folder(tmp_path)
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "posetransfer" and meta["license"] == "mit"
    assert {"pose-transfer", "person-image-generation", "patn"} <= set(meta["tags"])
    card = json.loads((folder / "card.json").read_text())
    (result,) = meta["model-index"][0]["results"]
    metrics = {m["type"]: m["value"] for m in result["metrics"]}
    for key in ("ssim", "mask_ssim", "l1", "mask_l1"):
        assert metrics[key] == card["metrics"][key], key
    assert meta["model-index"][0]["name"] == "synthetic-patn"
    assert 'posetransfer.load_generator("hf://me/posetransfer-test")' in text
    assert "synthetic people only" in text


def test_hub_folder_replaces_its_own_and_refuses_other_files(tmp_path):
    folder = bundled_hub_folder(tmp_path)
    write_hub_folder("synthetic-apatn", folder)  # ours: replaced
    assert json.loads((folder / "card.json").read_text())["name"] == "synthetic-apatn"
    assert "hf://OWNER/NAME" in (folder / "README.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # nothing left beside it
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds other files") as e:
        write_hub_folder("synthetic-patn", other)
    assert e.value.arg == "hub_folder" and (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="hub_repo='nope'"):
        write_hub_folder("synthetic-patn", tmp_path / "new", "nope")
    with pytest.raises(InputError, match="not a bundled model's folder"):
        write_hub_folder("market-patn", tmp_path / "new")


def test_pretrained_export_needs_a_checkpoint_or_a_hub_folder(capsys):
    assert main(["pretrained", "export", "--name", "synthetic-patn"]) == 2
    assert "give --checkpoint" in capsys.readouterr().err
