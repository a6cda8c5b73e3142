#!/usr/bin/env bash
# Idempotent set-up, sourced by the other scripts: a virtual environment in .venv with the package
# installed (editable, with dev and slurm extras) and Fashion-MNIST where apt can provide it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${REPRO_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ] || [ ! -x "$VENV/bin/pip" ]; then
  python3 -m venv --clear "$VENV"      # --clear: also repairs one cut short by an interruption
fi
if ! "$VENV/bin/python" -c "import repro, timm, hydra, wandb, pytest" 2>/dev/null \
   || [ pyproject.toml -nt "$VENV/.repro-installed" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch / torchvision pinned to the pair known to import together on Python 3.11 here.
  "$VENV/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
  "$VENV/bin/pip" install -q -e ".[dev,slurm]"
  touch "$VENV/.repro-installed"
fi
# Fashion-MNIST from Debian's package when possible; otherwise the loader downloads it.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
    || echo "note: apt could not install dataset-fashion-mnist; the loader will download it"
fi
export PATH="$PWD/$VENV/bin:$PATH"
