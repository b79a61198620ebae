"""Launchers: how the independent rows of an experiment run.

* ``local``: one after another in this process; with several GPUs, one queue of rows per GPU,
  each in its own process.
* ``slurm``: each row a SLURM job through submitit (partition, GPUs per row, time limit); a row
  with several GPUs trains under torchrun inside its job (`posetransfer.experiments.job`). The
  launcher waits for the jobs, or returns at once (``wait=False``) and `reproduce table DIR`
  collects what they finished. ``cluster="local"`` runs the same jobs through submitit's local
  executor (the tests do).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from posetransfer.core.files import atomic_write
from posetransfer.errors import InputError
from posetransfer.experiments.rows import RowJob, run_row

LAUNCHERS = ("local", "slurm")
SLURM_JOBS = "slurm-jobs.json"


@dataclass(frozen=True)
class Slurm:
    """Settings of the slurm launcher."""

    partition: str | None = None
    gpus_per_row: int = 1
    time_limit_min: int = 24 * 60
    cpus_per_row: int = 8
    wait: bool = True
    """Wait for the jobs; False: return after submitting (collect with `reproduce table`)."""
    cluster: str | None = None
    """submitit's cluster: None picks SLURM where it is; "local" runs the jobs as local
    processes (tests), "debug" in this process."""


def run_rows(
    jobs: Sequence[RowJob], launcher: str, out: Path, slurm: Slurm | None = None, gpus: int = 0
) -> list[dict[str, Any] | None]:
    """Run every row job; the rows' records (None for a row still running on SLURM)."""
    if launcher not in LAUNCHERS:
        raise InputError(
            f"launcher={launcher!r}: choose one of {', '.join(LAUNCHERS)}", arg="launcher"
        )
    if launcher == "slurm":
        return _slurm(jobs, out, slurm or Slurm())
    if gpus > 1 and len(jobs) > 1:
        return per_gpu(jobs, gpus)
    return [run_row(job) for job in jobs]


def _queue(jobs: Sequence[RowJob]) -> list[dict[str, Any]]:
    return [run_row(job) for job in jobs]


def per_gpu(jobs: Sequence[RowJob], gpus: int, device: str = "cuda:{}") -> list[dict[str, Any]]:
    """One process per GPU (``device`` with the GPU's index), each running its share of the
    rows in turn; the records in the order of ``jobs``."""
    queues = [
        [dataclasses.replace(j, device=device.format(g), progress=False) for j in jobs[g::gpus]]
        for g in range(gpus)
    ]
    with ProcessPoolExecutor(gpus, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_queue, queues))
    by_row = {r["row"]: r for queue in results for r in queue}
    return [by_row[j.row] for j in jobs]


def run_job(job: RowJob, gpus: int = 1) -> dict[str, Any]:
    """A row inside its SLURM job: under torchrun when it has several GPUs."""
    if gpus <= 1:
        return run_row(job)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "posetransfer.experiments.job",
        json.dumps(dataclasses.asdict(job)),
    ]
    subprocess.run(command, check=True)
    return json.loads((job.row_dir / "row.json").read_text())


def _slurm(jobs: Sequence[RowJob], out: Path, s: Slurm) -> list[dict[str, Any] | None]:
    try:
        import submitit
    except ImportError:
        raise InputError(
            "launcher=slurm needs submitit: pip install 'posetransfer[experiments]'",
            arg="launcher",
        ) from None
    executor = submitit.AutoExecutor(folder=out / "slurm", cluster=s.cluster)
    params: dict[str, Any] = {
        "timeout_min": s.time_limit_min,
        "gpus_per_node": s.gpus_per_row if s.cluster != "local" else 0,
        "cpus_per_task": s.cpus_per_row,
        "tasks_per_node": 1,
        "nodes": 1,
        "name": f"posetransfer-{jobs[0].experiment}" if jobs else "posetransfer",
    }
    if s.partition and executor.cluster == "slurm":
        params["slurm_partition"] = s.partition
    executor.update_parameters(**params)
    submitted = [
        executor.submit(run_job, dataclasses.replace(j, progress=False), s.gpus_per_row)
        for j in jobs
    ]
    atomic_write(
        out / SLURM_JOBS,
        json.dumps(
            {
                "cluster": executor.cluster,
                "jobs": {j.row: job.job_id for j, job in zip(jobs, submitted)},
            },
            indent=2,
        )
        + "\n",
    )
    if not s.wait:
        return [None] * len(jobs)
    return [job.result() for job in submitted]
