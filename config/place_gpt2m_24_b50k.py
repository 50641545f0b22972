# v4's Fig. 23 (PAPER.md §6): a 24-layer medium whose layers 16-24 (0-based blocks 15-23, the lazy ones) are the
# trained reference's, copied in place, and whose layers 1-15 start random (with the reference's wte/lm_head, wpe
# and ln_f), 100K steps at 50K-token batches; PAPER.md: worse than the fully random train_gpt2m_24_b50k.py.
# torchrun --standalone --nproc_per_node=8 train.py config/place_gpt2m_24_b50k.py
exec(open('config/train_gpt2m_24_b50k.py').read())
out_dir = 'out/place_gpt2m_24_b50k'
wandb_run_name = 'gpt2m-24L-lazy-15-23-in-place-b50k'
init_from = 'out/gpt2m_24/ckpt.pt'  # the trained reference (config/train_gpt2m_24.py)
inherit_place = '15-23'  # target positions 15-23 get source blocks 15-23; the depth stays the reference's 24
