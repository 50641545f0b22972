# v4's Fig. 23 (PAPER.md §6), the fully random arm: the 24-layer medium from scratch, 100K steps at 50K-token
# batches (6 * 1024 * 8 = 49,152 tokens per step) instead of the reference's 394K; against
# place_gpt2m_24_b50k.py, whose layers 16-24 come from the reference. PAPER.md gives no other setting for it, so
# the rest is the reference's recipe (lr 3e-4, 2K warmup, cosine to 1e-5).
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2m_24_b50k.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/gpt2m_24_b50k'
wandb_run_name = 'gpt2m-24L-random-b50k'
batch_size = 6
gradient_accumulation_steps = 8
