# Table 3 (PAPER.md §2), GPT-2 medium, 16 layers: each of the reference's blocks 0-15 gives its
# MLP and LayerNorm weights; its attention starts from fresh GPT-2 init (wte/lm_head, wpe and ln_f
# are inherited). PAPER.md: 2.85; everything inherited (config/inherit_gpt2m_16.py): 2.81.
exec(open('config/inherit_gpt2m_16.py').read())
out_dir = 'out/inherit_gpt2m_16_mlp_ln'
wandb_run_name = 'gpt2m-16L-inherit-mlp-ln'
inherit_block_parts = 'mlp,ln'
