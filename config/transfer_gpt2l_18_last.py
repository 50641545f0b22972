# v4's Fig. 3 (PAPER.md §6, "lazy layers do not transfer"): an 18-layer large initialised from the 36-layer
# reference's last 18 blocks (18-35, with its wte/lm_head, wpe and ln_f), 10K steps with the reference's recipe;
# against its first blocks (transfer_gpt2l_18_first.py) and random init (transfer_gpt2l_18_random.py).
# torchrun --standalone --nproc_per_node=8 train.py config/transfer_gpt2l_18_last.py
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/transfer_gpt2l_18_last'
wandb_run_name = 'gpt2l-18L-last-layers-10k'
init_from = 'out/gpt2l_36/ckpt.pt'  # the trained reference
inherit_layers = '18-35'
max_iters = 10000
lr_decay_iters = 10000
