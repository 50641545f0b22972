# Knowledge distillation with DistilBERT-style init, GPT-2 medium family (PAPER.md §4, KD rows): the 16-layer student
# starts from 16 blocks of the 24-layer reference (plus wte/lm_head, wpe, ln_f) and learns from its
# logits, 0.6 CE + 0.4 KD at T = 1, for 50K steps. PAPER.md: 3.03 val loss.
# torchrun --standalone --nproc_per_node=8 train.py config/kd_gpt2m_16_distil.py
# The layer map is the paper's (PAPER.md §6, v4's KD details): student blocks 0-11 from every other teacher block
# (0, 2, ..., 22), the last four from teacher blocks 18-21.
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/kd_gpt2m_16_distil'
wandb_run_name = 'gpt2m-16L-kd-distil'
init_from = 'out/gpt2m_24/ckpt.pt'
inherit_layers = '0,2,4,6,8,10,12,14,16,18,20,22,18,19,20,21'
teacher = 'out/gpt2m_24/ckpt.pt'
kd_alpha = 0.4
kd_temperature = 1.0
max_iters = 50000
lr_decay_iters = 50000
min_lr = learning_rate / 10  # PAPER.md §6: the KD runs decay to lr/10 (3e-5), not the 1e-5 of the 100K runs
