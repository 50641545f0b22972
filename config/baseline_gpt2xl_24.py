# Same-depth baseline for inherit_gpt2xl_24.py: 24 layers from random init (PAPER.md: 2.69 after 100K, 2.62 after 200K).
exec(open('config/train_gpt2xl_48.py').read())
out_dir = 'out/baseline_gpt2xl_24'
wandb_run_name = 'gpt2xl-24L-random'
n_layer = 24
