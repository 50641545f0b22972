# v4's Fig. 3 (PAPER.md §6): the 18-layer large from the 36-layer reference's first 18 blocks, 10K steps.
# torchrun --standalone --nproc_per_node=8 train.py config/transfer_gpt2l_18_first.py
exec(open('config/transfer_gpt2l_18_last.py').read())
out_dir = 'out/transfer_gpt2l_18_first'
wandb_run_name = 'gpt2l-18L-first-layers-10k'
inherit_layers = 18
