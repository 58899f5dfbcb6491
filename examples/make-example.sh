#!/usr/bin/env bash
# Build examples/detector with the pmf command-line tool only: a small PMF model initialised
# from another PMF model (a backbone), itself initialised from a weight file.
#
# Usage: examples/make-example.sh [PMF_BINARY]
#   PMF_BINARY defaults to `cargo run -q -p pmf --`. The result replaces examples/detector/.
# Every input file is tiny and created here; the writer lock file (.pmf.lock) is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ $# -ge 1 ]; then
  case $1 in
    */*) pmf_bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") ;;
    *) pmf_bin=$1 ;;
  esac
  pmf() { "$pmf_bin" "$@"; }
else
  cargo build -q -p pmf
  pmf() { cargo run -q --manifest-path "$root/Cargo.toml" -p pmf -- "$@"; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$root/examples/detector"
rm -rf "$out"

# Inputs: configurations, weights, checkpoints (a few bytes each).
mkdir -p "$work/inputs"
cd "$work/inputs"
printf 'depth: 18\nwidth: 64\n' > backbone.yaml
printf 'imagenet weights (placeholder)\n' > imagenet.bin
printf 'backbone epoch 1 weights (placeholder)\n' > backbone-e1.pt
printf 'backbone epoch 2 weights (placeholder)\n' > backbone-e2.pt
cat > detector_config.py <<'EOF'
# Producer configuration of the example detector (any content is allowed).
backbone = "resnet18"
learning_rate = 0.01
batch_size = 16
EOF
printf 'detector epoch 1 weights (placeholder)\n' > detector-e1.pt
printf 'detector epoch 2 weights (placeholder)\n' > detector-e2.pt
printf 'detector epoch 3 weights (placeholder)\n' > detector-e3.pt
cp detector-e2.pt best.pt

# 1. The backbone: initialised from a weight file, trained for 2 epochs.
backbone="$work/backbone"
pmf new "$backbone" --producer backbone_trainer --version 1.2.0 --config backbone.yaml \
  --name backbone --id backbone-0001 --param depth=18 --param pretrained=yes \
  --init-file imagenet.bin --init-name imagenet
pmf training start "$backbone"
pmf checkpoint add "$backbone" backbone-e1.pt --epoch 1
pmf checkpoint add "$backbone" backbone-e2.pt --epoch 2
pmf training end "$backbone"

# 2. The detector: initialised from the backbone's checkpoint 2, trained for 3 epochs.
pmf new "$out" --producer faster_rcnn --version 0.4.0 --config detector_config.py \
  --name detector --id detector-0001 \
  --param num_classes=3 --param input.width=640 --param input.height=480 \
  --param 'classes=[car, person, bicycle]' \
  --init-model "$backbone" --init-checkpoint 2
pmf training start "$out"
pmf checkpoint add "$out" detector-e1.pt --epoch 1
pmf checkpoint add "$out" detector-e2.pt --epoch 2
pmf checkpoint add "$out" detector-e3.pt --epoch 3
pmf checkpoint add "$out" best.pt --epoch 2 --ref best
pmf training end "$out"

# The writer lock is not part of the model; git keeps no empty folder, and the nested
# initialisation model needs no data/checkpoints/ (its checkpoint files are not stored).
rm -f "$out/.pmf.lock"
rmdir "$out/data/initialisation/data/checkpoints" 2>/dev/null || true
cd "$root"
pmf validate examples/detector
