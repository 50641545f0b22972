# Same-depth baseline for inherit_gpt2l_18.py: 18 layers from random init (PAPER.md: 2.97 after 100K, 2.84 after 200K).
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/baseline_gpt2l_18'
wandb_run_name = 'gpt2l-18L-random'
n_layer = 18
