# Table 2, hybrid stacking: the 24-layer reference's first L/4 blocks copied into both halves of a 12-layer model
# (0-5,0-5), with its wte/lm_head, wpe and ln_f, then trained 100K steps with the reference's recipe
# (PAPER.md: 2.83). With scale_attn_by_inverse_layer_idx the second-half copies see their new position's scale.
# torchrun --standalone --nproc_per_node=8 train.py config/hybrid_gpt2m_12.py
# PAPER.md's L/4 recipe gives 12 layers for the 24-layer medium reference (its Inheritune row has 16).
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/hybrid_gpt2m_12'
wandb_run_name = 'gpt2m-12L-hybrid-stack'
init_from = 'out/gpt2m_24/ckpt.pt'  # the trained reference
inherit_layers = '0-5,0-5'
