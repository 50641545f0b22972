# Table 2, progressive stacking, stage 2 of 2: the trained 12-layer model of config/stack_gpt2xl_12.py with its
# blocks duplicated (0-11,0-11: block i and block 12+i both start as its block i), then trained 100K more steps
# with a fresh optimizer and the reference's schedule (PAPER.md: 2.65). Budget split: see stack_gpt2xl_12.py.
# torchrun --standalone --nproc_per_node=8 train.py config/stack_gpt2xl_12.py
# torchrun --standalone --nproc_per_node=8 train.py config/stack_gpt2xl_24.py
# With scale_attn_by_inverse_layer_idx the copies in the second half see their new position's 1/(i+1) logit scale.
exec(open('config/train_gpt2xl_48.py').read())
out_dir = 'out/stack_gpt2xl_24'
wandb_run_name = 'gpt2xl-24L-stack'
init_from = 'out/stack_gpt2xl_12/ckpt.pt'
inherit_layers = '0-11,0-11'
