# Table 4's random baseline: 4 layers of GPT-2 small's width from random init, 100K steps (PAPER.md: 3.25).
exec(open('config/train_gpt2s_12.py').read())
out_dir = 'out/baseline_gpt2s_4'
wandb_run_name = 'gpt2s-4L-random'
n_layer = 4
