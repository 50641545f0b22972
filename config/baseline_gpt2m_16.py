# Same-depth baseline for inherit_gpt2m_16.py: 16 layers from random init, same steps and tokens
# (PAPER.md: 2.86 after 100K steps; 2.83 after 200K: config/baseline_gpt2m_16_200k.py).
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/baseline_gpt2m_16'
wandb_run_name = 'gpt2m-16L-random'
n_layer = 16
