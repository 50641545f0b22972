# Table 2, progressive stacking, stage 2 of 2: the trained 6-layer model of config/stack_gpt2m_6.py with its
# blocks duplicated (0-5,0-5: block i and block 6+i both start as its block i), then trained 100K more steps
# with a fresh optimizer and the reference's schedule (PAPER.md: 2.84). Budget split: see stack_gpt2m_6.py.
# torchrun --standalone --nproc_per_node=8 train.py config/stack_gpt2m_6.py
# torchrun --standalone --nproc_per_node=8 train.py config/stack_gpt2m_12.py
# With scale_attn_by_inverse_layer_idx the copies in the second half see their new position's 1/(i+1) logit scale.
# PAPER.md's L/4 recipe gives 12 layers for the 24-layer medium reference (its Inheritune row has 16).
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/stack_gpt2m_12'
wandb_run_name = 'gpt2m-12L-stack'
init_from = 'out/stack_gpt2m_6/ckpt.pt'
inherit_layers = '0-5,0-5'
