#!/usr/bin/env bash
# The project's check on a CUDA machine, in one command: each part runs under its own deadline,
# keeps going when one fails, and everything it wrote (logs, JSON, run folders' metrics) is packed
# into one archive. Needs only python3 with torch, torchvision, scikit-learn, safetensors and pytest
# (no Streamlit); data in $UNSIR_DATA_DIR (default ./data): FashionMNIST/raw/*-idx*-ubyte.gz and/or
# cifar-10-python.tar.gz; a part whose data is missing says so and is skipped.
#
#   bash bench/gpu_check.sh [OUT [PART...]]      OUT default gpu_check; PARTs default: core methods sweep
#
# Parts (the deadlines fit the 15 minutes of device time this project's sessions get):
#   core     digits experiment (fp32 and fp16), torchrun with one nccl process, --metrics all, the core tests
#   methods  every registered method on Fashion-MNIST (CIFAR-10 when Fashion-MNIST is missing), fast recipe
#   sweep    UNSIR presets with the official and fast retraining timed in the same run (2 epochs, scaled)
#   zoo      bench/zoo.py on Fashion-MNIST and CIFAR-10 with the calibration's signal check
#   own      calibrated against tuned and fast on the fast-recipe CIFAR-10 ResNet18, cat / dog / truck x 3 seeds
#   seeds    the fast preset, its no-noise ablation and calibrated on model seeds 1 and 2, every class
# DEVICE=cpu runs the same parts on a CPU (a dry run of the script; the deadlines will cut most parts).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check}
shift || true
parts=" ${*:-core methods sweep} "
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 UNSIR_DATA_DIR=${UNSIR_DATA_DIR:-data}
export UNSIR_CACHE_DIR=${UNSIR_CACHE_DIR:-$out/cache}
py=${PYTHON:-python3}
summary="$out/summary.txt"
: > "$summary"

want() { [[ $parts == *" $1 "* ]]; }
# step NAME SECONDS CMD...: run CMD under a deadline into $out/NAME.log and record its exit status
step() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  local note=""
  [ $rc -eq 124 ] && note=" (deadline ${limit} s)"
  printf '%-28s exit %3d  %4d s%s\n' "$name" "$rc" "$((SECONDS - start))" "$note" | tee -a "$summary"
}
have_fashion() { ls "$UNSIR_DATA_DIR"/FashionMNIST/raw/train-images-idx3-ubyte* > /dev/null 2>&1; }
have_cifar() { [ -e "$UNSIR_DATA_DIR/cifar-10-python.tar.gz" ] || [ -d "$UNSIR_DATA_DIR/cifar-10-batches-py" ]; }
# the data set of the methods and sweep parts: Fashion-MNIST (fits a device call), else CIFAR-10
if have_fashion; then dataset=fashionmnist; elif have_cifar; then dataset=cifar10; else dataset=""; fi

{
  git rev-parse HEAD 2> /dev/null || echo "commit unknown"
  $py -c "import torch; print('torch', torch.__version__, '| device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  nproc
} | tee "$out/machine.txt"

exp=($py -m unsir_core experiment --device "$device" --quiet)
if want core; then
  step digits_experiment 120 "${exp[@]}" --dataset digits --model resnet18 --forget 3 --out "$out/runs/digits"
  step digits_fp16 120 "${exp[@]}" --dataset digits --model resnet18 --forget 3 --set unsir.precision=fp16 \
    --out "$out/runs/digits_fp16"
  step digits_metrics_all 240 "${exp[@]}" --dataset digits --model resnet18 --forget 8 --metrics all \
    --methods unsir,ssd,finetune --out "$out/runs/digits_all"
  step torchrun_one_process 180 $py -m torch.distributed.run --standalone --nproc_per_node 1 -m unsir_core train \
    --dataset digits --model resnet18 --device "$device" --cache-dir "$out/cache_torchrun" --quiet
  step core_tests 300 $py -m pytest -q -x tests/test_train.py tests/test_unsir.py tests/test_methods.py
fi

if want methods; then
  if [ -z "$dataset" ]; then
    echo "methods: skipped, neither Fashion-MNIST nor CIFAR-10 is in $UNSIR_DATA_DIR" | tee -a "$summary"
  else
    all=$($py -c "from unsir_core.methods import list_methods; print(','.join(list_methods()))")
    step "methods_$dataset" 420 "${exp[@]}" --dataset "$dataset" --model resnet18 --recipe fast --forget 3 \
      --methods "$all" --out "$out/runs/methods_$dataset"
  fi
fi

if want sweep; then
  if [ -z "$dataset" ]; then
    echo "sweep: skipped, neither Fashion-MNIST nor CIFAR-10 is in $UNSIR_DATA_DIR" | tee -a "$summary"
  else
    step "sweep_$dataset" 300 $py -m bench.sweep --dataset "$dataset" --model resnet18 --recipe fast --classes 3 \
      --seeds 0 --point tuned: --point fast:preset=fast --point calibrated:preset=calibrated \
      --point official:preset=official --time-retrain official,fast --retrain-epochs 2 --device "$device" \
      --out "$out/sweep_${dataset}_resnet18_fast.json"
  fi
fi

if want zoo; then
  step zoo 300 $py -m bench.zoo --only cifar10,fashionmnist --signal-check --device "$device" --out "$out/zoo.json"
fi

if want own; then
  if have_cifar; then
    step own_model 200 $py -m bench.sweep --dataset cifar10 --model resnet18 --recipe fast --classes 3,5,9 \
      --seeds 0,1,2 --point calibrated:preset=calibrated --point tuned: --point fast:preset=fast \
      --time-retrain official --retrain-epochs 2 --device "$device" \
      --out "$out/sweep_cifar10_resnet18_fast_calibrated.json"
  else
    echo "own: skipped, CIFAR-10 is not in $UNSIR_DATA_DIR" | tee -a "$summary"
  fi
fi

if want seeds; then
  for seed in 1 2; do
    have_cifar || { echo "seeds: skipped, CIFAR-10 is not in $UNSIR_DATA_DIR" | tee -a "$summary"; break; }
    step "model_seed_$seed" 120 $py -m bench.sweep --dataset cifar10 --model resnet18 --recipe fast \
      --model-seed "$seed" --classes 0,1,2,3,4,5,6,7,8,9 --seeds 0 --point fast:preset=fast \
      --point "fast_no_noise:preset=fast;noise=none" --point calibrated:preset=calibrated --device "$device" \
      --out "$out/sweep_cifar10_resnet18_fast_modelseed${seed}.json"
  done
fi

# the archive: logs, JSON and each run's metrics.json, without checkpoints or the model cache
find "$out" -name '*.safetensors' -path "$out/runs/*" -delete
tar --exclude="$out/cache" --exclude="$out/cache_torchrun" -czf "$out.tar.gz" "$out"
echo "archive: $out.tar.gz ($(du -h "$out.tar.gz" | cut -f1))"
cat "$summary"
