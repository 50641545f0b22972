# Table 3 (PAPER.md §2), GPT-2 medium, 16 layers: each of the reference's blocks 0-15 gives its
# attention and LayerNorm weights; its MLP starts from fresh GPT-2 init (wte/lm_head, wpe and ln_f
# are inherited). PAPER.md: 2.84; everything inherited (config/inherit_gpt2m_16.py): 2.81.
exec(open('config/inherit_gpt2m_16.py').read())
out_dir = 'out/inherit_gpt2m_16_attn_ln'
wandb_run_name = 'gpt2m-16L-inherit-attn-ln'
inherit_block_parts = 'attn,ln'
