# Same-depth baseline for inherit_gpt2l_dagger_16.py: 16 layers from random init on FineWeb-edu.
exec(open('config/train_gpt2l_dagger_32.py').read())
out_dir = 'out/baseline_gpt2l_dagger_16'
wandb_run_name = 'gpt2l-dagger-16L-random'
n_layer = 16
