# Inheritune, GPT-2 xl family: 24 of the reference's 48 layers, one round (PAPER.md: 2.64 vs 2.65 for the 48L).
exec(open('config/train_gpt2xl_48.py').read())
out_dir = 'out/inherit_gpt2xl_24'
wandb_run_name = 'gpt2xl-24L-inheritune'
init_from = 'out/gpt2xl_48/ckpt.pt'
inherit_layers = 24
