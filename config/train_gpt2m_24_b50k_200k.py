# v4's Fig. 24 (PAPER.md §6, extended training): the 24-layer medium from scratch, 200K steps at 50K-token batches
# (49,152 tokens per step); PAPER.md: 2.87, against 2.86 for the 18-layer Inheritune model
# (inherit_gpt2m_18_b50k_200k.py).
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2m_24_b50k_200k.py
exec(open('config/train_gpt2m_24_b50k.py').read())
out_dir = 'out/gpt2m_24_b50k_200k'
wandb_run_name = 'gpt2m-24L-b50k-200k'
max_iters = 200000
lr_decay_iters = 200000
