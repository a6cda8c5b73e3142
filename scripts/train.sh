#!/usr/bin/env bash
# Set up if needed, then train (default: small ViT, Fashion-MNIST, early dropout, CPU, minutes).
# Any Hydra override passes through: bash scripts/train.sh drop=late_drop_path train.epochs=10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec python -m repro.train "$@"
