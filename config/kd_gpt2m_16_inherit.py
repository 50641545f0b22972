# Inheritune + knowledge distillation, GPT-2 medium family (PAPER.md §4, KD rows): the 16-layer student inherits
# blocks 0-15 of the 24-layer reference (as config/inherit_gpt2m_16.py) and learns from the reference's logits,
# 0.6 CE + 0.4 KD at T = 1, for 50K steps. Compare with config/inherit_gpt2m_16_50k.py (the same without KD).
# PAPER.md: 2.91 val loss (the paper gives no number for the no-KD 50K run).
# torchrun --standalone --nproc_per_node=8 train.py config/kd_gpt2m_16_inherit.py
exec(open('config/inherit_gpt2m_16.py').read())
out_dir = 'out/kd_gpt2m_16_inherit'
wandb_run_name = 'gpt2m-16L-kd-inheritune'
teacher = 'out/gpt2m_24/ckpt.pt'
kd_alpha = 0.4
kd_temperature = 1.0
max_iters = 50000
lr_decay_iters = 50000
min_lr = learning_rate / 10  # PAPER.md §6: the KD runs decay to lr/10 (3e-5), not the 1e-5 of the 100K runs
