# Inheritune on Qwen3-1.7B: its first 14 of 28 layers (per-head q/k norms, GQA 16/8 heads of 128, tied embedding),
# retrained on FineWeb-edu in Qwen's tokens. model_path='auto': model.py once it has Qwen3's q/k norms, transformers
# until then. Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_qwen3_1p7b_14.py
out_dir = 'out/inherit_qwen3_1p7b_14'
wandb_project = 'inheritune-hf'
wandb_run_name = 'qwen3-1.7b-14L-inheritune'
init_from = 'models/Qwen3-1.7B-Base'
model_path = 'auto'
inherit_layers = 14
dataset = 'fineweb_edu_Qwen3-1.7B-Base'  # prepare_fineweb_edu.py --tokenizer=models/Qwen3-1.7B-Base

block_size = 2048
batch_size = 8  # per GPU: with 8 accumulation steps in total, 64 sequences of 2048 tokens, 131K tokens a step
gradient_accumulation_steps = 8  # in total over all ranks
max_iters = 15000  # ~2B tokens
lr_decay_iters = 15000
learning_rate = 3e-4
min_lr = 3e-5
warmup_iters = 1000
weight_decay = 0.1
beta2 = 0.95
eval_interval = 1000
eval_windows = 512
