# v4's Fig. 3 (PAPER.md §6): the 18-layer large from random init, 10K steps with the reference's recipe.
# torchrun --standalone --nproc_per_node=8 train.py config/transfer_gpt2l_18_random.py
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/transfer_gpt2l_18_random'
wandb_run_name = 'gpt2l-18L-random-10k'
n_layer = 18
max_iters = 10000
lr_decay_iters = 10000
