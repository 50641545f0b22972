# Inheritune on OLMo-2-0425-1B: its first 8 of 16 layers (norms after each sublayer, q/k norms over the whole width,
# untied lm_head) through transformers (hf_adapter.py), retrained on FineWeb-edu in OLMo 2's tokens.
# Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_olmo2_1b_8.py
out_dir = 'out/inherit_olmo2_1b_8'
wandb_project = 'inheritune-hf'
wandb_run_name = 'olmo2-1b-8L-inheritune'
init_from = 'models/OLMo-2-0425-1B'
model_path = 'auto'
inherit_layers = 8
dataset = 'fineweb_edu_OLMo-2-0425-1B'  # prepare_fineweb_edu.py --tokenizer=models/OLMo-2-0425-1B

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
