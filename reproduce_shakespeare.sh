#!/usr/bin/env bash
# The Inheritune pipeline end to end on the built-in Shakespeare corpus, on CPU:
#   1. train a reference  2. probe its attention for lazy layers  3. grow from L/2 (Algorithm 1)
#   4. train a same-depth random-init baseline with the same steps and tokens (before 3, so grow's table shows it)
# bash reproduce_shakespeare.sh quick   # a few minutes: 6-layer reference, 200 steps (the README's main job)
# bash reproduce_shakespeare.sh full    # the README's table: 12-layer reference, 400 steps per run
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-quick}
case "$mode" in
  quick) out=out/shakespeare_quick
         sizes=(--n_layer=6 --max_iters=200 --lr_decay_iters=200 --warmup_iters=20 --eval_interval=50 --eval_iters=10 --batch_size=4)
         probe=(--num_seqs=32) ;;
  full)  out=out/shakespeare; sizes=(); probe=() ;;
  *) echo "error: mode must be quick or full, got '$mode'" >&2; exit 1 ;;
esac
half=$( [ "$mode" = quick ] && echo 3 || echo 6 )
ref=$out/ref_$((2 * half))  # full mode: the same directories as the configs, so the steps can be rerun one by one

python prepare_shakespeare.py
python train.py config/shakespeare_ref.py "${sizes[@]}" --out_dir=$ref
python attention_probe.py --source=$ref --dataset=shakespeare --out_dir=$out/probe "${probe[@]}"
python train.py config/shakespeare_baseline.py "${sizes[@]}" --n_layer=$half --out_dir=$out/random_$half
python grow.py config/shakespeare_grow.py "${sizes[@]}" --reference=$ref/ckpt.pt --out_dir=$out/grow \
  --compare_runs=$out/random_$half
cat $out/grow/grow.md
