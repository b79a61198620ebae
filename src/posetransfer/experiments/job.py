"""One row under torchrun (the slurm launcher's rows with several GPUs).

    python -m torch.distributed.run --nproc_per_node=G -m posetransfer.experiments.job JOB_JSON

Every process trains; after training, the first one generates and evaluates the row.
"""

from __future__ import annotations

import json
import os
import sys

from posetransfer.experiments.rows import RowJob, run_row, train_row


def main(argv: list[str] | None = None) -> int:
    d = json.loads((argv or sys.argv[1:])[0])
    job = RowJob(**{**d, "weights": tuple(tuple(w) for w in d.get("weights", ()))})
    if int(os.environ.get("RANK", "0")) == 0:
        run_row(job)
    else:
        train_row(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
