# Table 4 (PAPER.md §1): a 4-layer model that inherits blocks 4-7 of the 12-layer GPT-2 small reference (the paper's
# layers 5-8, 1-based) with its wte/lm_head, wpe and ln_f, trained 100K steps (PAPER.md: 3.19; the AvgRank of those
# reference layers is 9.48; 4 layers from random init: 3.25, config/baseline_gpt2s_4.py). Blocks moved to lower
# positions get their new position's 1/(i+1) attention scale (inherit.py notes it).
exec(open('config/train_gpt2s_12.py').read())
out_dir = 'out/inherit_gpt2s_layers4-7'
wandb_run_name = 'gpt2s-4L-layers4-7'
init_from = 'out/gpt2s_12/ckpt.pt'
inherit_layers = '4-7'
