# Inheritune reference, GPT-2 medium family: 24 layers / 16 heads / 1024 wide, trained from scratch on OpenWebText
# (PAPER.md §3-4: 2.81 val loss after 100K steps). 8 GPUs:
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2m_24.py
out_dir = 'out/gpt2m_24'
dataset = 'openwebtext'
wandb_run_name = 'gpt2m-24L-reference'

n_layer = 24
n_head = 16
n_embd = 1024
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True  # as the paper's models (HF GPT2Config)

# 12 * 1024 * 32 = 393,216 tokens per step (~394K)
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 32

learning_rate = 3e-4
min_lr = 1e-5
max_iters = 100000
lr_decay_iters = 100000
warmup_iters = 2000
weight_decay = 1e-1
decay_embeddings = False  # as the authors' runs: their (older nanoGPT) AdamW decays Linear weights only, not wte/lm_head or wpe
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0

eval_interval = 1000
eval_windows = 2400  # every paper config and eval_gpt2*.py: the same 2,400 fixed val windows of 1024 tokens
log_interval = 10
