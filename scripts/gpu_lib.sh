# Shell helpers for a short window on a bare GPU machine, sourced by gpu_window.sh and gpu_check.sh:
# install what was carried beside the tree, and start background jobs so that they, and only they,
# can be ended afterwards (by process group id: never by a name, which on a shared node matches
# other users' processes too).
#
#   source scripts/gpu_lib.sh
#   track CMD ARGS... > LOG 2>&1      # in the background, in a process group of its own
#   wait "$TRACKED_LAST"              # its pid, also its process group's id
#   end_tracked [GRACE_S=10]          # SIGTERM to each tracked group, SIGKILL after GRACE_S

T0=${T0:-$(date +%s)}
say() { echo "[t=$(( $(date +%s) - T0 )) s] $*"; }

# Carried beside the tree (neither is in the machine's image): .whl/ (hydra-core, omegaconf,
# antlr4-python3-runtime wheels), installed into /tmp/site; .gpu_data/fashion-mnist/ (its four
# IDX .gz files), placed where the loader looks. Each is skipped when absent.
install_carried() {
    if compgen -G ".whl/*.whl" > /dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || return 3
    fi
    export PYTHONPATH=/tmp/site:$PWD
    if [ -d .gpu_data/fashion-mnist ]; then
        mkdir -p /usr/share/datasets && cp -r .gpu_data/fashion-mnist /usr/share/datasets/
    fi
}

TRACKED=()
track() {
    # Monitor mode on for this one launch: the job gets a process group whose id is its pid, and
    # everything it starts (a queue's training processes) stays in that group.
    local was_on=0
    [[ $- == *m* ]] && was_on=1
    set -m
    "$@" &
    TRACKED_LAST=$!
    TRACKED+=("$TRACKED_LAST")
    (( was_on )) || set +m
}

groups_alive() {
    local pgid
    for pgid in "${TRACKED[@]}"; do
        kill -0 -- "-$pgid" 2> /dev/null && return 0
    done
    return 1
}

end_tracked() {
    # What the tracked jobs started is asked to stop (SIGTERM: a training run checkpoints, and a
    # later window resumes it), then killed if still there after GRACE_S seconds.
    local grace=${1:-10} pgid waited=0
    (( ${#TRACKED[@]} )) || return 0
    for pgid in "${TRACKED[@]}"; do kill -TERM -- "-$pgid" 2> /dev/null; done
    while groups_alive && (( waited < grace * 10 )); do sleep 0.1; waited=$(( waited + 1 )); done
    for pgid in "${TRACKED[@]}"; do kill -KILL -- "-$pgid" 2> /dev/null; done
    TRACKED=()
}
