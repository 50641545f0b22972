# Equal compute: the same-depth random-init baseline trained 200K steps, twice every other row's 100K (the paper's
# 200K rows, against Inheritune's 100K steps plus the reference's training it inherits) (PAPER.md: 2.62; 2.69 after 100K).
exec(open('config/baseline_gpt2xl_24.py').read())
out_dir = 'out/baseline_gpt2xl_24_200k'
wandb_run_name += '-200k'
max_iters = 200000
lr_decay_iters = 200000
