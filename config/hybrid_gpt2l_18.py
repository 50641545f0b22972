# Table 2, hybrid stacking: the 36-layer reference's first L/4 blocks copied into both halves of an 18-layer model
# (0-8,0-8), with its wte/lm_head, wpe and ln_f, then trained 100K steps with the reference's recipe
# (PAPER.md: 2.89). With scale_attn_by_inverse_layer_idx the second-half copies see their new position's scale.
# torchrun --standalone --nproc_per_node=8 train.py config/hybrid_gpt2l_18.py
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/hybrid_gpt2l_18'
wandb_run_name = 'gpt2l-18L-hybrid-stack'
init_from = 'out/gpt2l_36/ckpt.pt'  # the trained reference
inherit_layers = '0-8,0-8'
