# Table 2, half-width warm start, GPT-2 large family: all 36 layers, the first 10 of 20 heads and 640 of 1280
# dimensions of the reference (PAPER.md: 3.06).
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/halfwidth_gpt2l_36'
wandb_run_name = 'gpt2l-36L-halfwidth'
init_from = 'out/gpt2l_36/ckpt.pt'
inherit_n_head = 10
inherit_n_embd = 640
