# v4's Fig. 3 (PAPER.md §6): the 12-layer medium from the 24-layer reference's first 12 blocks (Inheritune's start),
# 10K steps; against its last blocks (transfer_gpt2m_12_last.py) and random init (transfer_gpt2m_12_random.py).
# torchrun --standalone --nproc_per_node=8 train.py config/transfer_gpt2m_12_first.py
exec(open('config/transfer_gpt2m_12_last.py').read())
out_dir = 'out/transfer_gpt2m_12_first'
wandb_run_name = 'gpt2m-12L-first-layers-10k'
inherit_layers = 12
