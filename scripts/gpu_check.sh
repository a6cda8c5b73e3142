#!/bin/bash
# The prepared GPU check (issue 28), about 4 minutes on one H200 or H100 (the limits add up to 265 s):
# each section under its own timeout, writing its table into OUT_DIR as it finishes, so a section
# that overruns loses only itself.
#
#   bash scripts/gpu_check.sh OUT_DIR [--dry-run] [--commit SHA] [--sections tests,vit,stream,regime]
#                             [--limit SECTION=SECONDS]...
#
# Sections (scripts/gpu_check.py): tests (tests/test_gpu.py), vit (ViT-T/16 at 224 px, bf16, data
# on the GPU: official-style loop, bare loop, ours eager / compiled / CUDA graphs; img/s and MFU),
# stream (the streamed ImageFolder path with the paper's augmentation on JPEGs written here:
# pipeline alone, training through it, against GPU-resident data), regime (runs per GPU-minute of
# the early regime: N single-run processes against seed-batched processes).
# Writes OUT_DIR/gpu_check_<section>_<hardware>_torch<version>.json (with provenance), check.md
# (every table, the hardware, versions, commit and command beside it) and check.log: 6 files,
# within the 8 a lent machine returns. --dry-run: every section at tiny sizes on the CPU (CUDA
# hidden), a rehearsal in about a minute. On a machine whose copy of the tree has no .git, give
# --commit (recorded as declared). Carried beside the tree (scripts/gpu_lib.sh install_carried):
# .whl/ with hydra-core, omegaconf and antlr4-python3-runtime wheels, .gpu_data/fashion-mnist/.
set -u
ARGS="$*"
OUT_DIR=$(mkdir -p "$1" && cd "$1" && pwd) || exit 2; shift
cd "$(dirname "$0")/.." || exit 2
source scripts/gpu_lib.sh                       # say, install_carried, track, end_tracked
declare -A LIMIT=([tests]=65 [vit]=100 [stream]=35 [regime]=65)
DRY=""; SECTIONS=tests,vit,stream,regime; GIVEN=()
while (( $# )); do
    case $1 in
        --dry-run) DRY=--dry-run; LIMIT=([tests]=120 [vit]=180 [stream]=120 [regime]=240) ;;
        --commit) export REPRO_COMMIT=$2; shift ;;
        --sections) SECTIONS=$2; shift ;;
        --limit) GIVEN+=("$2"); shift ;;
        *) echo "error: unknown argument $1 (see the head of $0)" >&2; exit 2 ;;
    esac
    shift
done
for pair in "${GIVEN[@]+"${GIVEN[@]}"}"; do LIMIT[${pair%%=*}]=${pair#*=}; done
for s in ${SECTIONS//,/ }; do
    [[ -n ${LIMIT[$s]:-} ]] || { echo "error: no section $s (tests, vit, stream, regime)" >&2; exit 2; }
done
export GPU_CHECK_COMMAND="bash scripts/gpu_check.sh $ARGS" PYTHONUNBUFFERED=1 PYTHON=${PYTHON:-python3}
trap 'end_tracked 5' EXIT
MD=$OUT_DIR/check.md; LOG=$OUT_DIR/check.log
if [ -n "$DRY" ]; then
    export CUDA_VISIBLE_DEVICES=""
else
    install_carried || exit 3
fi
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null)
printf '# GPU check%s, %s\n\n`%s`: GPU %s; commit %s\n\n' "${DRY:+ (dry run)}" "$(date -u +%FT%TZ)" \
    "$GPU_CHECK_COMMAND" "${GPU:-none}" "${REPRO_COMMIT:-$(git rev-parse --short HEAD 2> /dev/null)}" >> "$MD"
for s in ${SECTIONS//,/ }; do
    say "section $s: up to ${LIMIT[$s]} s" | tee -a "$LOG"
    GPU_CHECK_LIMIT=${LIMIT[$s]} track timeout -k 5 "${LIMIT[$s]}" "$PYTHON" scripts/gpu_check.py "$s" \
        "$OUT_DIR" $DRY >> "$LOG" 2>&1
    wait "$TRACKED_LAST"; rc=$?
    end_tracked 5                               # what the section left (DataLoader workers), by group
    case $rc in
        0) msg="done" ;;
        124 | 137) msg="stopped at its limit of ${LIMIT[$s]} s: no table" ;;
        *) msg="failed, exit status $rc: no table (check.log says why)" ;;
    esac
    say "section $s: $msg" | tee -a "$LOG"
    (( rc == 0 )) || printf '## %s\n\n%s\n\n' "$s" "Section $s $msg." >> "$MD"
done
ls -la "$OUT_DIR"; say "done"
