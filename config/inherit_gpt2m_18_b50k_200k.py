# v4's Fig. 24 (PAPER.md §6, extended training): Inheritune with 18 of the 24-layer reference's blocks (0-17, with
# its wte/lm_head, wpe and ln_f), trained 200K steps at 50K-token batches; PAPER.md: 2.86, against 2.87 for the
# 24-layer model trained the same way (train_gpt2m_24_b50k_200k.py). The reference is the §3 one
# (config/train_gpt2m_24.py); PAPER.md does not say it was retrained at the smaller batch.
# torchrun --standalone --nproc_per_node=8 train.py config/inherit_gpt2m_18_b50k_200k.py
exec(open('config/train_gpt2m_24_b50k_200k.py').read())
out_dir = 'out/inherit_gpt2m_18_b50k_200k'
wandb_run_name = 'gpt2m-18L-inheritune-b50k-200k'
init_from = 'out/gpt2m_24/ckpt.pt'
inherit_layers = 18
