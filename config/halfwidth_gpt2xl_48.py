# Table 2, half-width warm start, GPT-2 xl family: all 48 layers of the reference (PAPER.md: 2.77). 25 heads have no
# exact half: heads are copied whole (64 dims each), so this keeps the first 12 heads, 768 of 1600 dimensions
# (0.48 of the width, 0.23 of the block parameters); --inherit_n_head=13 --inherit_n_embd=832 is the other rounding.
exec(open('config/train_gpt2xl_48.py').read())
out_dir = 'out/halfwidth_gpt2xl_48'
wandb_run_name = 'gpt2xl-48L-halfwidth'
init_from = 'out/gpt2xl_48/ckpt.pt'
inherit_n_head = 12
inherit_n_embd = 768
