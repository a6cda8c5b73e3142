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
# PILOT_BATCHED="regime_critic,..." (PILOT_S seconds each): an experiment's pilot, seeds 0-7 of every
# arm (repro.report.plan.MIN_PILOT_SEEDS), seed-batched (up to SEEDS_PER_JOB seeds of an arm a
# process, JOBS processes: scripts/sweep.py --batched); once every pilot run has finished, this GPU's
# batched kind's plan from it (python -m repro.plan NAME --hardware KIND --write; for an experiment
# of cells such as regime_study, --cell all: every cell whose pilot is in); and no queue: a
# plan is committed before the runs it governs, so its planned seeds run in a later window
# (ONLY=NAME) once the plan, back in results.tgz, is committed. Log: OUT_DIR/pilot-NAME.log.
# The steps: results/regime_critic/NEXT_GPU.md.
#
# ONLY="NAME,...": the queue runs these experiments' plans alone, in this order (plan_queue.py --only).
# DRY=1: a rehearsal on the CPU (tests/test_critic.py): nothing is installed, trained or packed; the
# pilot and the queue list what they would run (--dry-run), and the plan is printed, not written.
#
# Carried beside the tree: .whl/ (hydra-core, omegaconf, antlr4-python3-runtime wheels: the
# machine's image lacks them) and .gpu_data/fashion-mnist/ (the four IDX .gz files). COMMIT is
# recorded as each run's commit (REPRO_COMMIT: the copy there has no .git). GRIDS: experiments
# to sweep as single runs beside the queue for GRID_S seconds (e.g. late_regime_search).
set -u
MIRROR=${MIRROR:-}; MIRROR_FROM=${MIRROR_FROM:-}; PILOT=${PILOT:-}; PILOT_S=${PILOT_S:-0}; PILOT_JOBS=${PILOT_JOBS:-12}
PILOT_BATCHED=${PILOT_BATCHED:-}; ONLY=${ONLY:-}; DRY=${DRY:-}; PYTHON=${PYTHON:-python3}
OUT_DIR=$1; export REPRO_COMMIT=$2 PYTHONUNBUFFERED=1
QUEUE_S=${3:-300}; K=${4:-41}; JOBS=${5:-9}; GRIDS=${6:-}; GRID_S=${7:-0}; GRID_JOBS=${8:-6}
if [ -n "$PILOT$PILOT_BATCHED" ] && (( PILOT_S <= 0 )); then
    echo "error: PILOT_S=SECONDS is needed with PILOT or PILOT_BATCHED (timeout 0 would not stop it)" >&2; exit 2
fi
source "$(dirname "$0")/gpu_lib.sh"           # say, install_carried, track, end_tracked
trap 'end_tracked 10' EXIT                     # what this window started, and nothing else
GPUS="['0']"; ON_GPU=--gpus; WRITE=--write; REHEARSE=""
if [ -n "$DRY" ]; then
    export CUDA_VISIBLE_DEVICES="" PYTHONPATH=$PWD; GPUS=None; ON_GPU=""; WRITE=""; REHEARSE=--dry-run
else
    install_carried || exit 3
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
KIND=$("$PYTHON" -c "from repro.report.launch import hardware_here; print(hardware_here($GPUS, True))")
for name in ${MIRROR//,/ }; do
    "$PYTHON" -m repro.plan "$name" --mirror "$MIRROR_FROM" --hardware "$KIND" $WRITE
done
SEEDS=$("$PYTHON" -c "from repro.report.plan import MIN_PILOT_SEEDS as n; print(f'range(0,{n})')")
for name in ${PILOT//,/ }; do
    END=$(( $(date +%s) + PILOT_S )); LOG="$OUT_DIR/pilot-$name.log"
    SINGLE=$("$PYTHON" -c "from repro.report.launch import hardware_here; print(hardware_here($GPUS))")
    say "$name: pilot (seed=$SEEDS), plan and planned seeds in ${PILOT_S} s, kind $SINGLE"
    track timeout -k 10 "$PILOT_S" "$PYTHON" scripts/sweep.py "$name" "seed=$SEEDS" $ON_GPU --jobs "$PILOT_JOBS" \
        $REHEARSE > "$LOG" 2>&1
    wait "$TRACKED_LAST"
    "$PYTHON" -m repro.plan "$name" --hardware "$SINGLE" $WRITE >> "$LOG" 2>&1   # refused: pilot short, or planned
    LEFT=$(( END - $(date +%s) ))
    if (( LEFT > 30 )); then
        track timeout -k 10 "$LEFT" "$PYTHON" scripts/plan_queue.py --budget $(( LEFT - 15 )) $ON_GPU \
            --jobs "$PILOT_JOBS" --only "$name" $REHEARSE >> "$LOG" 2>&1
        wait "$TRACKED_LAST"
    fi
done
for name in ${PILOT_BATCHED//,/ }; do
    LOG="$OUT_DIR/pilot-$name.log"
    say "$name: pilot (seed=$SEEDS, up to $K seeds of an arm a process, $JOBS processes) in ${PILOT_S} s, kind $KIND"
    track timeout -k 10 "$PILOT_S" "$PYTHON" scripts/sweep.py "$name" "seed=$SEEDS" $ON_GPU --batched "$K" \
        --jobs "$JOBS" $REHEARSE > "$LOG" 2>&1
    wait "$TRACKED_LAST"; rc=$?
    if (( rc != 0 )); then                   # stopped at PILOT_S (124, 137) or a run failed: no plan
        say "$name: the pilot did not finish (exit $rc): no plan; a later window resumes it" | tee -a "$LOG"
        continue
    fi
    CELLS=$("$PYTHON" -c "from repro.report.experiments import EXPERIMENTS as E; print('--cell all' * bool(E['$name'].cell))")
    say "plan: python -m repro.plan $name --hardware '$KIND' $CELLS $WRITE" | tee -a "$LOG"
    "$PYTHON" -m repro.plan "$name" --hardware "$KIND" $CELLS $WRITE >> "$LOG" 2>&1   # refused if already planned
done
if [ -n "$PILOT_BATCHED" ]; then
    say "no queue: this window wrote the plans of $PILOT_BATCHED; their seeds run in a later window, once committed"
else
    say "queue: ${QUEUE_S} s, ${JOBS} processes of up to ${K} seeds, kind $KIND${ONLY:+, only $ONLY}"
    track timeout -k 10 "$QUEUE_S" "$PYTHON" scripts/plan_queue.py --budget $(( QUEUE_S - 15 )) $ON_GPU \
        --batched "$K" --jobs "$JOBS" --default-estimate 60 ${ONLY:+--only "$ONLY"} $REHEARSE \
        > "$OUT_DIR/queue.log" 2>&1
    QUEUE=$TRACKED_LAST
    if [ -n "$GRIDS" ]; then
        sleep 20                                  # the queue's processes start first
        say "grids $GRIDS: ${GRID_S} s"
        track timeout -k 10 "$GRID_S" "$PYTHON" scripts/sweep.py "$GRIDS" $ON_GPU --jobs "$GRID_JOBS" $REHEARSE \
            > "$OUT_DIR/sweep.log" 2>&1
        wait "$TRACKED_LAST"
    fi
    wait $QUEUE; say "queue stopped"
fi
end_tracked 10    # the runs the queue and the grids left (SIGTERM: they checkpoint, resumable); by group id
if [ -z "$DRY" ]; then
    tar czf "$OUT_DIR/results.tgz" results        # the tables every finished run was recorded in
    tar czf "$OUT_DIR/multirun.tgz" --exclude='*.pt' --exclude=wandb multirun
fi
ls -la "$OUT_DIR"; say done
