import subprocess
import sys

import pytest

from posetransfer.config import cli_overrides, load_config, shipped_configs
from posetransfer.errors import InputError


def test_shipped_configs_load():
    assert {"market_patn", "fashion_patn", "synthetic"} <= set(shipped_configs())
    for name in shipped_configs():
        load_config(name)


def test_paper_recipes():
    m = load_config("market_patn")
    assert (m.loss.gan_mode, m.loss.lambda_l1, m.loss.pool_size, m.train.batch_size) == (
        "bce",
        10.0,
        50,
        32,
    )
    assert (m.data.height, m.data.width, m.model.generator) == (128, 64, "patn_market")
    f = load_config("fashion_patn")
    assert (f.loss.gan_mode, f.loss.lambda_gan, f.loss.lambda_l1, f.loss.lambda_perceptual) == (
        "lsgan",
        5.0,
        1.0,
        1.0,
    )
    assert (f.data.height, f.data.width, f.train.batch_size, f.loss.pool_size) == (256, 176, 7, 0)


def test_overrides_and_cli_form():
    over = cli_overrides(
        ["--train.batch_size", "8", "--model.ngf=32", "--loss.vgg_weights", "/x/vgg.pth"]
    )
    cfg = load_config("market_patn", over)
    assert (
        cfg.train.batch_size == 8 and cfg.model.ngf == 32 and cfg.loss.vgg_weights == "/x/vgg.pth"
    )
    assert cfg.model.generator_kwargs() == {"ngf": 32}


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_sise=8", "unknown field train.batch_sise"),
        ("trian.batch_size=8", "unknown section 'trian'"),
        ("train.batch_size=0", "train.batch_size must be at least 1"),
        ("loss.gan_mode=wgan", "loss.gan_mode must be bce or lsgan"),
        ("data.height=130", "multiples of 4"),
        ("batch_size=8", "section.field"),
    ],
)
def test_bad_overrides_are_named(override, message):
    with pytest.raises(InputError, match=message):
        load_config("synthetic", [override])


def test_unknown_config_name():
    with pytest.raises(InputError, match="unknown config 'nope'; shipped: "):
        load_config("nope")


def test_command_line_values_take_the_field_type():
    cfg = load_config(
        "synthetic",
        cli_overrides(
            [
                "--train.lr",
                "2e-4",
                "--train.run_name",
                "0001",
                "--data.root",
                "no",
                "--train.max_minutes",
                "none",
                "--train.progress",
                "false",
                "--model.ngf",
                "32",
            ]
        ),
    )
    assert cfg.train.lr == 2e-4 and cfg.train.run_name == "0001" and cfg.data.root == "no"
    assert cfg.train.max_minutes is None and cfg.train.progress is False and cfg.model.ngf == 32
    with pytest.raises(InputError, match="model.ngf must be int, got '2.5'"):
        load_config("synthetic", ["model.ngf=2.5"])
    with pytest.raises(InputError, match="with the command-line overrides: train.lr must be float"):
        load_config("synthetic", ["train.lr=fast"])


def test_config_does_not_import_the_checkpoint_module():
    code = "import sys, posetransfer.config; print('posetransfer.checkpoint' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_resume_without_a_config_starts_from_the_checkpoint_config(tmp_path):
    from posetransfer.checkpoint import save_checkpoint
    from posetransfer.models.registry import create_generator

    cfg = load_config("synthetic", ["train.iterations=7", "data.sigma=3"])
    run = tmp_path / "run"
    save_checkpoint(
        run / "checkpoints" / "step-0000003", create_generator("patn_tiny"), "patn_tiny", {}, cfg, 3
    )
    from posetransfer.train.resume import resume_config

    resumed, ckpt = resume_config([f"train.resume={run}", "train.lr=0.01"])
    assert ckpt == run / "checkpoints" / "step-0000003"
    assert (resumed.train.iterations, resumed.data.sigma, resumed.train.lr) == (7, 3.0, 0.01)
    assert resumed.train.resume == str(run)


def test_empty_resume_value_is_refused_naming_the_field():
    for name in (None, "synthetic"):
        with pytest.raises(InputError, match="train.resume='': empty") as e:
            load_config(name, ["train.resume="])
        assert e.value.flag_message().startswith("--train.resume '': empty; name the run")


def test_resume_none_starts_a_new_run():
    assert load_config("synthetic", ["train.resume=none"]).train.resume is None


def test_resume_config_records_its_checkpoint_but_does_not_save_it(tmp_path):
    from posetransfer.checkpoint import save_checkpoint
    from posetransfer.models.registry import create_generator

    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step-0000003"
    save_checkpoint(ckpt, create_generator("patn_tiny"), "patn_tiny", {}, load_config(), 3)
    from posetransfer.train.resume import resume_config

    resumed, base = resume_config([f"train.resume={run}"])
    assert base == ckpt
    assert set(resumed.to_dict()) == {"data", "model", "loss", "train"}
    assert not hasattr(load_config("synthetic"), "base_checkpoint")  # not a setting
