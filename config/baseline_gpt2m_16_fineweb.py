# Same-depth baseline on FineWeb-edu, medium family: 16 layers from random init (PAPER.md §4 zero-shot average 46.84).
exec(open('config/train_gpt2m_24_fineweb.py').read())
out_dir = 'out/baseline_gpt2m_16_fineweb'
wandb_run_name = 'gpt2m-16L-fineweb-random'
n_layer = 16
