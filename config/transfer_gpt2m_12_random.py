# v4's Fig. 3 (PAPER.md §6): the 12-layer medium from random init, 10K steps with the reference's recipe; the lazy
# start (transfer_gpt2m_12_last.py) tracks this one.
# torchrun --standalone --nproc_per_node=8 train.py config/transfer_gpt2m_12_random.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/transfer_gpt2m_12_random'
wandb_run_name = 'gpt2m-12L-random-10k'
n_layer = 12
max_iters = 10000
lr_decay_iters = 10000
