#!/bin/bash
# One short GPU window on a bare machine with no network (a lent GPU, a cluster slot): install the
# carried wheels, put Fashion-MNIST where the loader looks, run the committed plans' queue for this
# GPU's batched kind (and, beside it, unplanned grids), then pack the tables and the run folders
# into OUT_DIR (what comes back). Used for early_regime's H200 plan (results/README.md, The GPU path).
#
#   bash scripts/gpu_window.sh OUT_DIR COMMIT [QUEUE_S=300] [SEEDS_PER_JOB=41] [JOBS=9] [GRIDS] [GRID_S] [GRID_JOBS=6]
#
# MIRROR="regime_study,..." with MIRROR_FROM="<pilot kind>": first write this GPU's batched kind's
# plans of those experiments, borrowed cell by cell from that kind's committed pilot
# (python -m repro.plan NAME --mirror KIND: a pure function of the committed pilot), so that
# the queue runs them although the machine's exact kind (its torch build) is known only here.
#
# PILOT="dynamics_batch,..." (PILOT_S seconds each, PILOT_JOBS=12 processes): before the queue, an
# experiment whose plan is pending its pilot (results/NAME/plan.json, repro.report.plan) gets its pilot
# here as single-run processes (its analysis does not seed-batch), this GPU's plan from that pilot
# (repro.report.plan NAME --write: a pure function of the pilot, written before any planned run), then
# its planned seeds (plan_queue.py, unbatched); a later window skips what is recorded. Log:
# OUT_DIR/pilot-NAME.log.
#
# Carried beside the tree: .whl/ (hydra-core, omegaconf, antlr4-python3-runtime wheels: the
# machine's image lacks them) and .gpu_data/fashion-mnist/ (the four IDX .gz files). COMMIT is
# recorded as each run's commit (REPRO_COMMIT: the copy there has no .git). GRIDS: experiments
# to sweep as single runs beside the queue for GRID_S seconds (e.g. late_regime_search).
set -u
MIRROR=${MIRROR:-}; MIRROR_FROM=${MIRROR_FROM:-}; PILOT=${PILOT:-}; PILOT_S=${PILOT_S:-0}; PILOT_JOBS=${PILOT_JOBS:-12}
OUT_DIR=$1; export REPRO_COMMIT=$2 PYTHONUNBUFFERED=1
QUEUE_S=${3:-300}; K=${4:-41}; JOBS=${5:-9}; GRIDS=${6:-}; GRID_S=${7:-0}; GRID_JOBS=${8:-6}
source "$(dirname "$0")/gpu_lib.sh"           # say, install_carried, track, end_tracked
trap 'end_tracked 10' EXIT                     # what this window started, and nothing else
install_carried || exit 3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
KIND=$(python3 -c "from repro.report.launch import hardware_here; print(hardware_here(['0'], True))")
for name in ${MIRROR//,/ }; do
    python3 -m repro.plan "$name" --mirror "$MIRROR_FROM" --hardware "$KIND" --write
done
for name in ${PILOT//,/ }; do
    END=$(( $(date +%s) + PILOT_S )); LOG="$OUT_DIR/pilot-$name.log"
    SINGLE=$(python3 -c "from repro.report.launch import hardware_here; print(hardware_here(['0']))")
    SEEDS=$(python3 -c "from repro.report.plan import MIN_PILOT_SEEDS as n; print(f'range(0,{n})')")
    say "$name: pilot (seed=$SEEDS), plan and planned seeds in ${PILOT_S} s, kind $SINGLE"
    track timeout -k 10 "$PILOT_S" python3 scripts/sweep.py "$name" "seed=$SEEDS" --gpus --jobs "$PILOT_JOBS" \
        > "$LOG" 2>&1
    wait "$TRACKED_LAST"
    python3 -m repro.plan "$name" --hardware "$SINGLE" --write >> "$LOG" 2>&1   # refused: pilot short, or planned
    LEFT=$(( END - $(date +%s) ))
    if (( LEFT > 30 )); then
        track timeout -k 10 "$LEFT" python3 scripts/plan_queue.py --budget $(( LEFT - 15 )) --gpus \
            --jobs "$PILOT_JOBS" --only "$name" >> "$LOG" 2>&1
        wait "$TRACKED_LAST"
    fi
done
say "queue: ${QUEUE_S} s, ${JOBS} processes of up to ${K} seeds, kind $KIND"
track timeout -k 10 "$QUEUE_S" python3 scripts/plan_queue.py --budget $(( QUEUE_S - 15 )) --gpus \
    --batched "$K" --jobs "$JOBS" --default-estimate 60 > "$OUT_DIR/queue.log" 2>&1
QUEUE=$TRACKED_LAST
if [ -n "$GRIDS" ]; then
    sleep 20                                  # the queue's processes start first
    say "grids $GRIDS: ${GRID_S} s"
    track timeout -k 10 "$GRID_S" python3 scripts/sweep.py "$GRIDS" --gpus --jobs "$GRID_JOBS" \
        > "$OUT_DIR/sweep.log" 2>&1
    wait "$TRACKED_LAST"
fi
wait $QUEUE; say "queue stopped"
end_tracked 10    # the runs the queue and the grids left (SIGTERM: they checkpoint, resumable); by group id
tar czf "$OUT_DIR/results.tgz" results        # the tables every finished run was recorded in
tar czf "$OUT_DIR/multirun.tgz" --exclude='*.pt' --exclude=wandb multirun
ls -la "$OUT_DIR"; say done
