# Inheritune, GPT-2 large family: 18 of the reference's 36 layers, one round (PAPER.md: 2.80 vs 2.85 for the 36L).
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/inherit_gpt2l_18'
wandb_run_name = 'gpt2l-18L-inheritune'
init_from = 'out/gpt2l_36/ckpt.pt'
inherit_layers = 18
