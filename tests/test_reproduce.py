"""`posetransfer reproduce`: every experiment under the smoke preset, resuming, launchers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from posetransfer.cli import main
from posetransfer.errors import InputError
from posetransfer.experiments import (
    Slurm,
    experiment_names,
    load_experiment,
    render_table,
    run_experiment,
)
from posetransfer.experiments.rows import RowJob
from posetransfer.experiments.spec import QUALITY_METRICS, load_spec

CONTRACT_METRICS = {*"ssim mask_ssim is mask_is ds pckh fid lpips l1 mask_l1".split()}


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory) -> Path:
    """The smoke preset's synthetic people, built once for the module."""
    return tmp_path_factory.mktemp("smoke") / "data"


@pytest.fixture(scope="module")
def table1(tmp_path_factory, smoke_data) -> Path:
    out = tmp_path_factory.mktemp("t1") / "table1"
    run_experiment("table1", "smoke", out, data=smoke_data, progress=False)
    return out


def _cli(*argv: str) -> int:
    return main(["reproduce", *argv])


def test_list_names_every_table_and_figure(capsys):
    assert _cli("list") == 0
    text = capsys.readouterr().out
    for name in [f"table{i}" for i in range(1, 7)] + [f"fig{i}" for i in range(4, 13)]:
        assert re.search(rf"^{name} ", text, re.M), name
    assert "human raters" in text  # table3: how it is run


def test_table_json_follows_the_contract(table1):
    table = json.loads((table1 / "table.json").read_text())
    assert table["experiment"] == "table1" and table["preset"] == "smoke"
    rows = {r["row"]: r for r in table["rows"]}
    assert list(rows) == [r.row for r in load_experiment("table1").rows]
    for r in table["rows"]:
        assert set(r["ours"]) <= CONTRACT_METRICS and set(r["paper"]) == set(r["ours"])
    # Synthetic people have Market-1501's size: the paper column holds its Market numbers.
    assert rows["PATN"]["paper"]["ssim"] == 0.311 and rows["APATN"]["paper"]["mask_ssim"] == 0.817
    assert rows["PATN"]["status"] == "done" and rows["PG2"]["status"].startswith("not given")
    ours = rows["PATN"]["ours"]
    assert 0 < ours["ssim"] < 1 and ours["l1"] > 0
    assert rows["PATN"]["difference"]["ssim"] == pytest.approx(ours["ssim"] - 0.311, abs=1e-4)
    # The real targets score themselves perfectly.
    assert rows["Real data"]["ours"]["ssim"] == pytest.approx(1.0)
    assert rows["Real data"]["ours"]["l1"] == 0.0
    # A metric the preset does not measure says so.
    assert "not measured by the smoke preset" in rows["PATN"]["unavailable"]["fid"]
    assert rows["PATN"]["training"]["steps"] == 2
    md = (table1 / "table.md").read_text()
    assert "| PATN | " in md and "(ours minus the paper's)" in md
    assert (table1 / "fig5.png").is_file() and (table1 / "fig12.png").is_file()
    assert not (table1 / "fig4.png").exists()  # DeepFashion's figure; these people are 128x64
    assert len(list((table1 / "fig10").glob("pair-*"))) == 3


def test_every_row_keeps_its_run_images_report_and_per_pair_scores(table1):
    row = table1 / "rows" / "patn"
    assert list((row / "runs").glob("*/checkpoints/step-0000002"))
    assert len(list((row / "generated").glob("*.png"))) == 4
    report = json.loads((row / "report.json").read_text())
    assert report["evaluated"] == 4
    header = (row / "per_pair.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["pair", "from", "to"] and "mask_ssim" in header


def test_external_outputs_are_scored_as_their_row(tmp_path, table1, smoke_data):
    out = tmp_path / "t1"
    real = table1 / "rows" / "real-data" / "generated"
    run_experiment(
        "table1",
        "smoke",
        out,
        data=smoke_data,
        external={"XingGAN": real},
        reuse=[table1],
        progress=False,
    )
    rows = {r["row"]: r for r in json.loads((out / "table.json").read_text())["rows"]}
    assert rows["XingGAN"]["status"] == "done"
    assert rows["XingGAN"]["ours"]["ssim"] == pytest.approx(1.0)
    # The trained rows were copied from the first run, not trained again.
    record = json.loads((out / "rows" / "patn" / "row.json").read_text())
    assert record["reused_from"] == str(table1 / "rows" / "patn")
    assert record["generated_dir"] == str(out / "rows" / "patn" / "generated")


def test_rows_reused_through_a_relative_path_point_into_the_new_run(
    tmp_path, table1, smoke_data, monkeypatch
):
    monkeypatch.chdir(table1.parent)
    run_experiment(
        "fig12", "smoke", tmp_path / "f12", data=smoke_data, reuse=["table1"], progress=False
    )
    again = run_experiment(
        "fig12", "smoke", "f12b", data=smoke_data, reuse=[tmp_path / "f12"], progress=False
    )
    record = json.loads((table1.parent / "f12b" / "rows" / "patn" / "row.json").read_text())
    assert record["generated_dir"] == str(table1.parent / "f12b" / "rows" / "patn" / "generated")
    assert record["row"] == "PATN"
    assert record["training"]["run_dir"].startswith(str(table1.parent / "f12b" / "rows"))
    assert again["complete"] and (table1.parent / "f12b" / "fig12.png").is_file()


def test_unknown_external_row_is_refused_by_its_flag(tmp_path, capsys):
    code = _cli(
        "run",
        "table1",
        "--preset",
        "smoke",
        "--out",
        str(tmp_path / "o"),
        "--external",
        f"PATN={tmp_path}",
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--external 'PATN': not an external row of table1" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["table4", "table5"])
def test_quality_tables_run_every_row_and_draw_their_figure(tmp_path, smoke_data, name):
    exp = load_experiment(name)
    table = run_experiment(name, "smoke", tmp_path / name, data=smoke_data, progress=False)
    assert table["complete"] and len(table["rows"]) == len(exp.rows)
    assert all(r["ours"]["mask_ssim"] is not None for r in table["rows"])
    generators = {r["training"]["generator"] for r in table["rows"]}
    assert len(generators) == len({r.model.generator("synthetic")[0] for r in exp.rows})
    for figure in exp.figures:
        assert (tmp_path / name / f"{figure}.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fig7", "fig8", "fig9"])
def test_figures_of_table4_and_table5_rows(tmp_path, smoke_data, name):
    exp = load_experiment(name)
    table = run_experiment(name, "smoke", tmp_path / name, data=smoke_data, progress=False)
    assert [r["row"] for r in table["rows"]] == [r.row for r in exp.rows]
    assert (tmp_path / name / f"{name}.png").is_file()
    if name == "fig9":
        assert [r["row"] for r in table["rows"]][1:] == [
            "APATB cat -> add",
            "APATB w/o cat",
            "APATB w/o res",
        ]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fig4", "fig5", "fig10", "fig11", "fig12"])
def test_figures_of_table1_rows(tmp_path, smoke_data, table1, name):
    out = tmp_path / name
    run_experiment(name, "smoke", out, data=smoke_data, reuse=[table1], progress=False)
    if name in ("fig10", "fig11"):
        pngs = sorted((out / name).rglob("*.png"))
        assert len(pngs) >= 3 and len(list((out / name).glob("pair-*"))) == 3
    else:
        assert (out / f"{name}.png").is_file()


def test_fig12_shows_the_worst_pairs_by_the_metric_asked(tmp_path, smoke_data, table1, capsys):
    out = tmp_path / "fig12"
    run_experiment("fig12", "smoke", out, data=smoke_data, reuse=[table1], progress=False)
    before = (out / "fig12.png").read_bytes()
    assert _cli("table", str(out), "--metric", "l1") == 0
    assert (out / "fig12.png").read_bytes() != before
    assert _cli("table", str(out), "--metric", "nope") == 2
    assert "--metric 'nope': not in" in capsys.readouterr().err


@pytest.mark.slow
def test_table2_and_fig6_measure_this_machine(tmp_path):
    t2 = run_experiment("table2", "smoke", tmp_path / "t2", progress=False)
    rows = {r["row"]: r for r in t2["rows"]}
    assert rows["PATN (9 PATBs)"]["ours"]["params_m"] == pytest.approx(41.36, abs=0.01)
    assert rows["APATN (5 APATBs)"]["ours"]["params_m"] == pytest.approx(16.85, abs=0.01)
    assert rows["PATN (9 PATBs)"]["ours"]["fps"] > 0 and rows["PG2"]["ours"]["fps"] is None
    assert rows["PG2"]["paper"]["fps"] == 10.36
    f6 = run_experiment("fig6", "smoke", tmp_path / "f6", progress=False)
    assert {r["row"]: r["paper"]["us"] for r in f6["rows"]} == {"PATB": 1543, "APATB": 3114}
    assert all(r["ours"]["us"] > 0 for r in f6["rows"])
    assert (tmp_path / "f6" / "fig6.png").is_file()


@pytest.mark.slow
def test_table6_runs_the_reid_study_with_the_preset_grid(tmp_path):
    pytest.importorskip("torchreid")
    t6 = run_experiment("table6", "smoke", tmp_path / "t6", progress=False)
    rows = {r["row"]: r for r in t6["rows"]}
    assert rows["none"]["ours"]["0.5"] is not None and rows["none"]["ours"]["1.0"] is not None
    assert rows["PATN*"]["ours"]["0.5"] is not None and rows["APATN*"]["ours"]["0.5"] is not None
    assert rows["PATN"]["paper"] == {"0.5": 60.3, "1.0": 65.3}  # the preset's columns
    assert (tmp_path / "t6" / "study" / "results.jsonl").is_file()


def test_table3_says_how_the_user_study_is_run(tmp_path, capsys):
    assert _cli("run", "table3", "--preset", "smoke", "--out", str(tmp_path / "o")) == 2
    assert "human raters" in capsys.readouterr().err


def test_a_partial_run_renders_its_pending_rows(tmp_path, smoke_data, monkeypatch):
    import posetransfer.experiments.launch as launch

    calls = []

    def stop_after_one(job):
        if calls:
            raise KeyboardInterrupt
        calls.append(job.row)
        return real(job)

    real = launch.run_row
    monkeypatch.setattr(launch, "run_row", stop_after_one)
    out = tmp_path / "t4"
    with pytest.raises(KeyboardInterrupt):
        run_experiment("table4", "smoke", out, data=smoke_data, progress=False)
    table = render_table(out)
    status = [r["status"] for r in table["rows"]]
    assert status[0] == "done" and set(status[1:]) == {"pending"} and not table["complete"]
    assert "| ResNet, 9 blocks | - / 0.301" in (out / "table.md").read_text()
    # The same command again finishes the others and leaves the first alone.
    first = (out / "rows" / "resnet-5-blocks" / "row.json").stat().st_mtime_ns
    monkeypatch.setattr(launch, "run_row", real)
    table = run_experiment("table4", "smoke", out, data=smoke_data, progress=False)
    assert table["complete"]
    assert (out / "rows" / "resnet-5-blocks" / "row.json").stat().st_mtime_ns == first


@pytest.mark.slow
def test_killed_run_continues_where_it_stopped(tmp_path, smoke_data):
    """kill -9 in the middle of a row; the same command finishes, redoing no finished row."""
    out = tmp_path / "t5"
    cmd = [
        sys.executable,
        "-m",
        "posetransfer.cli",
        "reproduce",
        "run",
        "table5",
        "--preset",
        "smoke",
        "--data",
        str(smoke_data),
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    first = out / "rows" / "patb" / "row.json"
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert first.exists()
    stamp = first.stat().st_mtime_ns
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp
    table = json.loads((out / "table.json").read_text())
    assert table["complete"] and all(r["status"] == "done" for r in table["rows"])


@pytest.mark.slow
def test_local_launcher_runs_one_queue_of_rows_per_gpu(tmp_path, smoke_data):
    """Several GPUs: one process per GPU takes every other row (here "cpu" for each GPU)."""
    from posetransfer.experiments.launch import per_gpu

    out = tmp_path / "t1"
    run_experiment("table1", "smoke", out, data=smoke_data, progress=False)
    jobs = []
    for slug in ("patn", "apatn", "real-data"):
        record = json.loads((out / "rows" / slug / "row.json").read_text())
        (out / "rows" / slug / "row.json").unlink()
        jobs.append(RowJob(**record["job"]))
    records = per_gpu(jobs, 2, device="cpu")
    assert [r["row"] for r in records] == ["PATN", "APATN", "Real data"]
    assert all((out / "rows" / s / "row.json").is_file() for s in ("patn", "apatn", "real-data"))


def test_a_row_job_runs_alone_as_under_torchrun(tmp_path, smoke_data, monkeypatch):
    """`python -m posetransfer.experiments.job JOB` (rank 0): the row, trained and scored."""
    from posetransfer.experiments import job

    out = tmp_path / "t1"
    run_experiment("table1", "smoke", out, data=smoke_data, progress=False)
    done = out / "rows" / "apatn" / "row.json"
    record = json.loads(done.read_text())
    done.unlink()
    monkeypatch.setenv("RANK", "0")
    assert job.main([json.dumps(record["job"])]) == 0
    again = json.loads(done.read_text())
    assert again["results"]["ssim"] == record["results"]["ssim"]
    assert again["training"]["resumed"]  # the finished run was found, not trained anew


def test_another_experiment_in_the_same_folder_is_refused(table1, smoke_data):
    with pytest.raises(InputError, match="holds another experiment run"):
        run_experiment("table4", "smoke", table1, data=smoke_data, progress=False)


def test_out_may_not_be_the_data(tmp_path, smoke_data, table1):
    with pytest.raises(InputError, match="out=.*is the input data"):
        run_experiment("table1", "smoke", smoke_data, data=smoke_data, progress=False)


def test_paper_preset_needs_the_prepared_dataset(tmp_path, capsys):
    assert _cli("run", "table1", "--preset", "paper", "--out", str(tmp_path / "o")) == 2
    assert "--data: the paper preset runs on a prepared dataset" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_slurm_launcher_through_submitits_local_executor(tmp_path, smoke_data):
    pytest.importorskip("submitit")
    out = tmp_path / "t1"
    slurm = Slurm(cluster="local", wait=False, time_limit_min=10)
    table = run_experiment(
        "table1", "smoke", out, data=smoke_data, launcher="slurm", slurm=slurm, progress=False
    )
    jobs = json.loads((out / "slurm-jobs.json").read_text())
    assert jobs["cluster"] == "local" and set(jobs["jobs"]) == {"PATN", "APATN", "Real data"}
    # Returned at once; `reproduce table` collects the rows once the jobs are done.
    deadline = time.monotonic() + 240
    while not table["complete"] and time.monotonic() < deadline:
        time.sleep(1)
        table = render_table(out)
    assert table["complete"]
    assert {r["row"] for r in table["rows"] if r["status"] == "done"} == set(jobs["jobs"])


def _paper_tables() -> Path | None:
    for root in (os.environ.get("POSETRANSFER_SHARED"), REPO.parent / "shared", "/work/shared"):
        if root and (Path(root) / "paper-tables.md").is_file():
            return Path(root) / "paper-tables.md"
    return None


def _markdown_rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[c.replace("**", "").strip() for c in r] for r in rows[2:]]


def test_specs_hold_the_papers_numbers():
    """Every number of every spec against the paper's tables as transcribed in shared/."""
    path = _paper_tables()
    if path is None:
        pytest.skip("shared/paper-tables.md not found (set POSETRANSFER_SHARED)")
    text = path.read_text()
    market = ["ssim", "is", "mask_ssim", "mask_is", "ds", "pckh"]
    fashion = ["ssim", "is", "ds", "pckh"]
    names = {
        "PG2 *": "PG2",
        "Def-GAN *": "Def-GAN",
        "VUnet (Esser et al.) *": "VUnet",
        "XingGAN (Tang et al.) *": "XingGAN",
    }
    checked = 0
    for table, heading in (
        ("table1", "## Table 1"),
        ("table4", "## Table 4"),
        ("table5", "## Table 5"),
    ):
        paper = {names.get(r[0], r[0]): r[1:] for r in _markdown_rows(text, heading)}
        for row in load_experiment(table).rows:
            cells = paper[row.row]
            want = {
                "market": dict(zip(market, cells[:6])),
                "fashion": dict(zip(fashion, cells[6:])),
            }
            for ds, values in want.items():
                got = row.paper[ds]
                assert set(got) == {k for k, v in values.items() if v != "-"}, (table, row.row)
                for k, v in got.items():
                    assert v == float(values[k]), (table, row.row, ds, k)
                    checked += 1
    t2 = {r[0]: r[1:] for r in _markdown_rows(text, "## Table 2")}
    for row in load_experiment("table2").rows:
        params, fps = t2[row.row]
        assert row.paper == {"params_m": float(params.split()[0]), "fps": float(fps.split()[0])}
        checked += 2
    t3 = {r[0]: r[1:] for r in _markdown_rows(text, "## Table 3")}
    for row in load_experiment("table3").rows:
        keys = ["market_r2g", "market_g2r", "fashion_r2g", "fashion_g2r"]
        assert row.paper == dict(zip(keys, map(float, t3[row.row]))), row.row
        checked += 4
    t6 = _markdown_rows(text, "## Table 6")
    columns = [f"{0.1 * i:.1f}" for i in range(1, 11)] + ["x2", "x3"]
    resnet50 = {r[0].replace(" *", "*"): r[2:] for r in t6 if r[1] == "ResNet-50"}
    for row in load_experiment("table6").rows:
        want = {c: float(v) for c, v in zip(columns, resnet50[row.row]) if v != "-"}
        assert row.paper == want, row.row
        checked += len(want)
    blocks = re.search(r"Whole APATB ([\d,]+) us; whole PATB ([\d,]+) us", text)
    f6 = {r.row: r.paper["us"] for r in load_experiment("fig6").rows}
    assert f6 == {"APATB": int(blocks[1].replace(",", "")), "PATB": int(blocks[2].replace(",", ""))}
    checked += 2
    assert checked == 310  # 70 + 90 + 70 (Tables 1, 4, 5) + 12 + 20 + 46 + 2


def test_every_spec_loads_and_quality_rows_use_the_papers_metric_names():
    for name in experiment_names():
        exp = load_experiment(name)
        for row in exp.rows:
            for values in row.paper.values() if exp.kind == "quality" else []:
                assert set(values) <= set(QUALITY_METRICS)


def test_a_spec_with_two_rows_of_one_folder_is_refused():
    text = "name: x\ntitle: x\nkind: quality\nrows: [{row: 'PATN*'}, {row: 'patn random'}]\n"
    with pytest.raises(InputError, match="two rows have the same label"):
        load_spec(text, "spec x")
