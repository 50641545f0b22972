# Table 2, progressive stacking, stage 2 of 2: the trained 9-layer model of config/stack_gpt2l_9.py with its
# blocks duplicated (0-8,0-8: block i and block 9+i both start as its block i), then trained 100K more steps
# with a fresh optimizer and the reference's schedule (PAPER.md: 2.87). Budget split: see stack_gpt2l_9.py.
# torchrun --standalone --nproc_per_node=8 train.py config/stack_gpt2l_9.py
# torchrun --standalone --nproc_per_node=8 train.py config/stack_gpt2l_18.py
# With scale_attn_by_inverse_layer_idx the copies in the second half see their new position's 1/(i+1) logit scale.
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/stack_gpt2l_18'
wandb_run_name = 'gpt2l-18L-stack'
init_from = 'out/stack_gpt2l_9/ckpt.pt'
inherit_layers = '0-8,0-8'
