#!/usr/bin/env bash
# The calibration's measurements on a CUDA machine, in one command, each part with a deadline:
#   1. the model zoo (bench/zoo.py) on Fashion-MNIST and CIFAR-10, with the signal check;
#   2. the project's own fast-recipe CIFAR-10 ResNet18: calibrated against tuned and fast, cat / dog /
#      truck x 3 seeds, official-recipe retraining timed in the same run (2 epochs, scaled);
#   3. other model seeds of that recipe, every class: the fast preset, its no-noise ablation and
#      calibrated (does a preset tuned on model seed 0 hold on the others?).
# Needs python3 with torch, torchvision, scikit-learn and safetensors; the data in $UNSIR_DATA_DIR
# (FashionMNIST/raw/*-idx*-ubyte.gz and cifar-10-python.tar.gz). Writes JSON and logs to OUT (default
# bench/results). Usage: bash bench/zoo_gpu.sh [OUT [PART...]], PART among zoo, own, seeds (default all).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results}
parts=" ${*:2} "
[ "$parts" = "  " ] && parts=" zoo own seeds "
mkdir -p "$out"
export PYTHONUNBUFFERED=1 UNSIR_CACHE_DIR=${UNSIR_CACHE_DIR:-/tmp/unsir-ckpt}
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"

want() { [[ $parts == *" $1 "* ]]; }

if want zoo; then
  timeout 300 python3 bench/zoo.py --only cifar10,fashionmnist --signal-check --device cuda \
    --out "$out/zoo_gpu.json" > "$out/zoo_gpu.log" 2>&1
  echo "zoo: exit $?"; tail -n 25 "$out/zoo_gpu.log"
fi

if want own; then
  timeout 100 python3 bench/sweep.py --dataset cifar10 --model resnet18 --recipe fast --classes 3,5,9 --seeds 0,1,2 \
    --point "calibrated:preset=calibrated" --point "tuned:" --point "fast:preset=fast" \
    --time-retrain official --retrain-epochs 2 --device cuda \
    --out "$out/sweep_cifar10_resnet18_fast_calibrated_gpu.json" > "$out/sweep_own_gpu.log" 2>&1
  echo "own model: exit $?"; grep -E "med|retraining|error" "$out/sweep_own_gpu.log"
fi

for seed in 1 2; do
  want seeds || continue
  timeout 60 python3 bench/sweep.py --dataset cifar10 --model resnet18 --recipe fast --model-seed "$seed" \
    --classes 0,1,2,3,4,5,6,7,8,9 --seeds 0 \
    --point "fast:preset=fast" --point "fast_no_noise:preset=fast;noise=none" --point "calibrated:preset=calibrated" \
    --device cuda --out "$out/sweep_cifar10_resnet18_fast_modelseed${seed}_gpu.json" > "$out/sweep_seed${seed}_gpu.log" 2>&1
  echo "model seed $seed: exit $?"; grep -E "med|error" "$out/sweep_seed${seed}_gpu.log"
done
