# Table 2, half-width warm start, GPT-2 medium family: all 24 layers of the reference, its first 8 of 16 heads and
# 512 of 1024 dimensions (first 2048 MLP hidden units, first 512 dims of wte/lm_head, wpe and every LayerNorm), then
# trained with the reference's recipe (PAPER.md: 3.04).
# torchrun --standalone --nproc_per_node=8 train.py config/halfwidth_gpt2m_24.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/halfwidth_gpt2m_24'
wandb_run_name = 'gpt2m-24L-halfwidth'
init_from = 'out/gpt2m_24/ckpt.pt'  # the trained reference
inherit_n_head = 8
inherit_n_embd = 512  # 8 heads of the reference's 64 dims
