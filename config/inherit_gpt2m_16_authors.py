# Inheritune as the authors' script does it: blocks 0-15 and the tied wte/lm_head of the 24-layer reference, but
# fresh (random) position embeddings and final LayerNorm. The repo's default, config/inherit_gpt2m_16.py, inherits
# wpe and ln_f too.
exec(open('config/inherit_gpt2m_16.py').read())
out_dir = 'out/inherit_gpt2m_16_authors'
wandb_run_name = 'gpt2m-16L-inheritune-authors'
inherit_wpe = False
inherit_ln_f = False
