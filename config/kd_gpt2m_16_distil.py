# Knowledge distillation with DistilBERT-style init, GPT-2 medium family (PAPER.md §4, KD rows): the 16-layer student
# starts from 16 evenly spaced blocks of the 24-layer reference (plus wte/lm_head, wpe, ln_f) and learns from its
# logits, 0.6 CE + 0.4 KD at T = 1, for 50K steps. PAPER.md: 3.03 val loss.
# torchrun --standalone --nproc_per_node=8 train.py config/kd_gpt2m_16_distil.py
# DistilBERT keeps every other layer (12 -> 6); 24 -> 16 cannot, so this takes blocks round(i * 23 / 15), i = 0..15:
# two of every three, spread over the whole depth, keeping the first block (it reads the embeddings) and the last
# (ln_f and lm_head read its output), which every-other-layer selection also keeps in spirit.
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/kd_gpt2m_16_distil'
wandb_run_name = 'gpt2m-16L-kd-distil'
init_from = 'out/gpt2m_24/ckpt.pt'
inherit_layers = '0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23'
teacher = 'out/gpt2m_24/ckpt.pt'
kd_alpha = 0.4
kd_temperature = 1.0
max_iters = 50000
lr_decay_iters = 50000
