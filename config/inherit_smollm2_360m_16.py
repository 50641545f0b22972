# Inheritune on a current small model: the first 16 of SmolLM2-360M's 32 layers (GQA 15/5 heads, tied embedding, RoPE
# base 1e5) with its embedding and final norm, retrained on FineWeb-edu in SmolLM2's own tokens. Not in the paper: a
# starting point for a half-depth SmolLM2; grow.py with reference=models/SmolLM2-360M adds layers back (Algorithm 1).
# Commands: docs/other_models.md#smollm2-360m-half-depth
#   torchrun --standalone --nproc_per_node=8 train.py config/inherit_smollm2_360m_16.py
out_dir = 'out/inherit_smollm2_360m_16'
wandb_project = 'inheritune-llama'
wandb_run_name = 'smollm2-360m-16L-inheritune'
init_from = 'models/SmolLM2-360M'
inherit_layers = 16
dataset = 'fineweb_edu_SmolLM2-360M'  # prepare_fineweb_edu.py --tokenizer=models/SmolLM2-360M

block_size = 2048
batch_size = 8  # per GPU: with 8 accumulation steps in total, 64 sequences of 2048 tokens, 131K tokens a step
gradient_accumulation_steps = 8  # in total over all ranks
max_iters = 15000  # ~2B tokens
lr_decay_iters = 15000
learning_rate = 1e-3
min_lr = 1e-4
warmup_iters = 1000
weight_decay = 0.1
beta2 = 0.95
eval_interval = 1000
eval_windows = 512
