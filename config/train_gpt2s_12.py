# GPT-2 small reference for Table 4 (PAPER.md §1): 12 layers / 12 heads / 768 wide, scale_attn_by_inverse_layer_idx,
# no bias, no dropout, §3's recipe (AdamW 0.9/0.95, weight decay 0.1, clip 1.0, 2K warmup, cosine to 1e-5, 100K steps)
# with the medium family's ~394K-token batch. §3 gives no peak lr for small: 6e-4, GPT-3's and nanoGPT's for 124M.
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2s_12.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/gpt2s_12'
wandb_run_name = 'gpt2s-12L-reference'
n_layer = 12
n_head = 12
n_embd = 768
learning_rate = 6e-4
