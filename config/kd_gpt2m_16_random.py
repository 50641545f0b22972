# Knowledge distillation, GPT-2 medium family (PAPER.md §4, KD rows): a 16-layer student from random init learns
# from the 24-layer reference's logits, loss = 0.6 CE + 0.4 T^2 KL(p_teacher || p_student) at T = 1, for 50K steps.
# PAPER.md: 3.02 val loss.
# torchrun --standalone --nproc_per_node=8 train.py config/kd_gpt2m_16_random.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/kd_gpt2m_16_random'
wandb_run_name = 'gpt2m-16L-kd-random'
n_layer = 16
teacher = 'out/gpt2m_24/ckpt.pt'  # the trained reference; frozen, not saved in the student's checkpoints
kd_alpha = 0.4
kd_temperature = 1.0
max_iters = 50000
lr_decay_iters = 50000
min_lr = learning_rate / 10  # PAPER.md §6: the KD runs decay to lr/10 (3e-5), not the 1e-5 of the 100K runs
