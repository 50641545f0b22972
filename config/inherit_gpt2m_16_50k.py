# Inheritune without KD for the KD rows' budget, GPT-2 medium family (PAPER.md §4): config/inherit_gpt2m_16.py
# trained for 50K steps instead of 100K, so it compares step for step with config/kd_gpt2m_16_*.py.
# torchrun --standalone --nproc_per_node=8 train.py config/inherit_gpt2m_16_50k.py
exec(open('config/inherit_gpt2m_16.py').read())
out_dir = 'out/inherit_gpt2m_16_50k'
wandb_run_name = 'gpt2m-16L-inheritune-50k'
max_iters = 50000
lr_decay_iters = 50000
min_lr = learning_rate / 10  # the KD runs' schedule (PAPER.md §6: cosine to lr/10), so only KD differs
