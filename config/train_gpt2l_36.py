# Inheritune reference, GPT-2 large family: 36 layers / 20 heads / 1280 wide on OpenWebText (PAPER.md: 2.85).
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2l_36.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/gpt2l_36'
wandb_run_name = 'gpt2l-36L-reference'
n_layer = 36
n_head = 20
n_embd = 1280
# 8 * 1024 * 16 = 131,072 tokens per step (128K)
batch_size = 8
gradient_accumulation_steps = 16
learning_rate = 2e-4
