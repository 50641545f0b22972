# Inheritune on a small Qwen3.5 (hybrid: 3 of every 4 layers gated-delta-rule linear attention, the 4th full
# attention): the first half of its layers, layer_types cut with them, through transformers (hf_adapter.py).
# inherit_layers is half of the folder's num_hidden_layers (its text_config's): check it after the download.
# Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_qwen35_0p8b_half.py
out_dir = 'out/inherit_qwen35_0p8b_half'
wandb_project = 'inheritune-hf'
wandb_run_name = 'qwen35-0.8b-half-inheritune'
init_from = 'models/Qwen3.5-0.8B-Base'
model_path = 'transformers'
inherit_layers = 12
dataset = 'fineweb_edu_Qwen3.5-0.8B-Base'  # prepare_fineweb_edu.py --tokenizer=models/Qwen3.5-0.8B-Base

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
