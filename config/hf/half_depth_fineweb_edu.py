# What the configs of config/hf/ share: ~2B tokens of FineWeb-edu in the model's own tokens, 2048-token windows, 131K
# tokens a step, AdamW with weight decay 0.1 and beta2 0.95, 512 fixed val windows; model.py where it represents the
# family exactly, else transformers (model_path='auto'). Each config sets its model, depth and dataset after exec'ing this.
wandb_project = 'inheritune-hf'
model_path = 'auto'
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
