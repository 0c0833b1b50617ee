#!/usr/bin/env bash
# GPU checks of the Warp engine, run through the device tool on an H100/H200 machine (Python 3.12 and CUDA torch
# preinstalled, no network). Prepare HERE first:  bash scripts/gpu_pack.sh   (fills .whl/stage1 and .whl/stage2)
#
# The packages do not fit one call (warp-lang alone is 78 MB compressed; a call carries 64 MiB), so two calls on
# the same warm machine (it is given back 30 s after a call; make call 2 at once):
#   call 1: command "bash scripts/gpu_check.sh stage1"  carry [".whl/stage1"]   (~1 min: start + 60 MiB)
#   call 2: command "bash scripts/gpu_check.sh"         carry [".whl/stage2"]   timeout_s 570: ~40 s install,
#           then the checks within GPU_CHECK_BUDGET (480 s; a step that would pass it is cut or skipped)
#
# Call 2 installs the wheels into /tmp/site, makes `coohoi` importable from a symlink shim in /tmp/shim (the
# checkout's coohoi/ plus envs/, agents/, cfg/, assets/ as coohoi.envs, ...; setup.py is not installed because it
# pins the CPU torch), then runs, each under its own time limit, logging to $OUT:
#   1. scripts/gpu_smoke.py on cuda:0 (compiles MuJoCo Warp's kernels, checks the CUDA graph)
#   2. coohoi bench engine=warp: 1024, 4096, 8192 environments, both scenes, raw mujoco_warp and GPU memory
#   3. coohoi bench engine=mujoco engine.nthread=16 at 4096 environments, both scenes (same machine's CPU)
#   4. tests/test_warp_parity.py and tests/test_sync_free_step.py on cuda:0 (the latter under torch's sync debug mode)
#   5. AMP-locomotion training on the Warp engine with 4096 environments, PPO then the off-policy learner (td3), each
#      for half of the time that is left (train.max_minutes), evaluating every 20 epochs. With
#      GPU_CHECK_TEAM_INIT=<phase-1 checkpoint> (carry it along), two-agent long-box carrying instead: PPO fine-tuned
#      from that checkpoint, then the same run from scratch (issue 10's comparison at 4096 environments)
# and prints a summary. Python runs with -P so that the checkout itself never shadows the shim.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
STAGE=/tmp/coohoi_stage
SITE=/tmp/site
SHIM=/tmp/shim
OUT=${OUT:-/tmp/coohoi_gpu_out}
mkdir -p "$OUT" "$STAGE"
BUDGET=${GPU_CHECK_BUDGET:-480}
# Overridable for a dry run on a CPU machine: GPU_CHECK_LOCAL=1 skips the install and uses the Python on PATH,
# e.g.  GPU_CHECK_LOCAL=1 GPU_CHECK_DEVICE=cpu GPU_CHECK_WARP_SIZES=[4] GPU_CHECK_CPU_SIZES=[8] GPU_CHECK_CPU_THREADS=2
DEVICE=${GPU_CHECK_DEVICE:-cuda:0}
WARP_SIZES=${GPU_CHECK_WARP_SIZES:-[1024,4096,8192]}
CPU_SIZES=${GPU_CHECK_CPU_SIZES:-[4096]}
CPU_THREADS=${GPU_CHECK_CPU_THREADS:-16}
START=$(date +%s)

if [ "${1:-}" = "stage1" ]; then
  cp .whl/stage1/* "$STAGE/" && ls -la "$STAGE"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
  echo "stage1 stored in $STAGE; run call 2 now: bash scripts/gpu_check.sh (carry .whl/stage2)"
  exit 0
fi

log() { echo "[gpu_check $(($(date +%s) - START))s] $*"; }

# ---- install ---------------------------------------------------------------------------------------------------
if [ "${GPU_CHECK_LOCAL:-0}" = 1 ]; then
  SITE=$(mktemp -d)  # nothing to install: the current environment has the packages
else
part0=$(ls "$STAGE"/warp.so.xz.part0 .whl/stage1/warp.so.xz.part0 2>/dev/null | head -1)
if [ -z "$part0" ]; then
  echo "missing warp.so.xz.part0: run call 1 (bash scripts/gpu_check.sh stage1, carry .whl/stage1) first" >&2
  exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/stage2/*.whl \
  || { echo "pip install of .whl/stage2 failed" >&2; exit 2; }
cat "$part0" .whl/stage2/warp.so.xz.part1 > "$STAGE/warp.so.xz"
if [ "$(sha256sum "$STAGE/warp.so.xz" | cut -d' ' -f1)" != "$(cat .whl/stage2/warp.so.xz.sha256)" ]; then
  echo "warp.so.xz is corrupt (checksum mismatch): repack with scripts/gpu_pack.sh and rerun both calls" >&2
  exit 2
fi
mkdir -p "$SITE/warp/bin"
xz -d -c "$STAGE/warp.so.xz" > "$SITE/warp/bin/warp.so" || { echo "xz -d of warp.so failed" >&2; exit 2; }
fi

bash scripts/make_shim.sh "$SHIM" || { echo "could not build the import shim in $SHIM" >&2; exit 2; }
export PYTHONPATH="$SHIM:$SITE" COOHOI_SHIM="$SHIM" PYTHONUNBUFFERED=1
log "installed: $(python3 -P -c 'import warp, mujoco, mujoco_warp, torch; print("warp", warp.__version__, "mujoco", mujoco.__version__, "mujoco_warp", mujoco_warp.__version__, "torch", torch.__version__)')"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; } \
  | tee "$OUT/gpu.txt"

# ---- checks, each with the time that is left ---------------------------------------------------------------------
declare -A STATUS
step() {  # step NAME MAX_SECONDS COMMAND...   (GPU_CHECK_ONLY="parity train" runs just those steps)
  local name=$1 max=$2; shift 2
  if [ -n "${GPU_CHECK_ONLY:-}" ] && [[ " $GPU_CHECK_ONLY " != *" $name "* ]]; then STATUS[$name]="not selected"; return; fi
  local left=$((BUDGET - ($(date +%s) - START) - 5))
  if [ "$left" -lt 20 ]; then STATUS[$name]="skipped (budget)"; log "skip $name"; return; fi
  [ "$max" -gt "$left" ] && max=$left
  log "start $name (limit ${max}s)"
  timeout "$max" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  case $rc in 0) STATUS[$name]="ok";; 124) STATUS[$name]="TIMEOUT after ${max}s";; *) STATUS[$name]="FAILED rc=$rc";; esac
  log "end $name: ${STATUS[$name]}"
  tail -n 25 "$OUT/$name.log"
}

step smoke 240 python3 -P scripts/gpu_smoke.py --device "$DEVICE" --envs 64
step bench_warp 200 python3 -P -m coohoi.cli bench engine=warp engine.device="$DEVICE" "bench.num_envs=$WARP_SIZES" \
  bench.seconds=1.0 bench.rounds=2
step bench_cpu16 90 python3 -P -m coohoi.cli bench engine=mujoco engine.nthread="$CPU_THREADS" \
  "bench.num_envs=$CPU_SIZES" bench.seconds=2.0 bench.rounds=2
step parity 150 env COOHOI_TEST_WARP_DEVICE="$DEVICE" python3 -P -m pytest -q -s -p no:cacheprovider \
  tests/test_warp_parity.py tests/test_sync_free_step.py
TRAIN_ENVS=${GPU_CHECK_TRAIN_ENVS:-4096}
if [ -n "${GPU_CHECK_TEAM_INIT:-}" ]; then
  RUNS=(team_finetune team_scratch)
  declare -A RUN_ARGS=([team_finetune]="task=team_carry_long_box train.init_from=$GPU_CHECK_TEAM_INIT"
                       [team_scratch]="task=team_carry_long_box")
else
  RUNS=(ppo td3)
  declare -A RUN_ARGS=([ppo]="task=amp_locomotion train=ppo" [td3]="task=amp_locomotion train=td3")
fi
for algo in "${RUNS[@]}"; do
  left=$((BUDGET - ($(date +%s) - START) - 10))
  [ "$algo" = "${RUNS[0]}" ] && left=$((left / 2))
  minutes=$(python3 -c "print(max(0.5, ($left - 60) / 60))")  # a minute for start-up, baselines and the last eval
  # shellcheck disable=SC2086
  step "train_$algo" "$left" python3 -P -m coohoi.cli train ${RUN_ARGS[$algo]} engine=warp \
    engine.device="$DEVICE" engine.num_envs="$TRAIN_ENVS" train.max_epochs=100000 train.max_minutes="$minutes" \
    train.eval.every=20 train.eval.num_envs=1024 experiment="gpu_run_$algo" output_dir=/tmp/coohoi_runs
  cp "/tmp/coohoi_runs/gpu_run_$algo/metrics.jsonl" "$OUT/train_${algo}_metrics.jsonl" 2>/dev/null
done

# ---- summary ---------------------------------------------------------------------------------------------------
{
  echo "==== coohoi GPU check summary ($(cat "$OUT/gpu.txt" 2>/dev/null)) ===="
  for name in smoke bench_warp bench_cpu16 parity "${RUNS[@]/#/train_}"; do echo "$name: ${STATUS[$name]:-not run}"; done
  echo "---- smoke";            grep -E '^\[(ok|FAIL)\]' "$OUT/smoke.log" 2>/dev/null
  echo "---- Warp engine";      grep -E '^ *[0-9]+ |^ +N |engine=' "$OUT/bench_warp.log" 2>/dev/null
  echo "---- CPU engine, $CPU_THREADS threads"; grep -E '^ *[0-9]+ |^ +N |engine=' "$OUT/bench_cpu16.log" 2>/dev/null
  echo "---- parity";           grep -E 'passed|failed|error|worst' "$OUT/parity.log" 2>/dev/null | tail -5
  for algo in "${RUNS[@]}"; do
    echo "---- training $algo (baselines, first and last epochs, summary)"
    grep -E '^baselines|^trained policy' "$OUT/train_$algo.log" 2>/dev/null
    grep -E '^epoch' "$OUT/train_$algo.log" 2>/dev/null | sed -n '1p;$p'
  done
  echo "total $(($(date +%s) - START)) s"
} | tee "$OUT/summary.txt"
