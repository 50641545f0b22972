# Table 2, hybrid stacking: the 48-layer reference's first L/4 blocks copied into both halves of a 24-layer model
# (0-11,0-11), with its wte/lm_head, wpe and ln_f, then trained 100K steps with the reference's recipe
# (PAPER.md: 2.64). With scale_attn_by_inverse_layer_idx the second-half copies see their new position's scale.
# torchrun --standalone --nproc_per_node=8 train.py config/hybrid_gpt2xl_24.py
exec(open('config/train_gpt2xl_48.py').read())
out_dir = 'out/hybrid_gpt2xl_24'
wandb_run_name = 'gpt2xl-24L-hybrid-stack'
init_from = 'out/gpt2xl_48/ckpt.pt'  # the trained reference
inherit_layers = '0-11,0-11'
