# Inheritune reference, GPT-2 xl family: 48 layers / 25 heads / 1600 wide on OpenWebText (PAPER.md: 2.65).
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2xl_48.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/gpt2xl_48'
wandb_run_name = 'gpt2xl-48L-reference'
n_layer = 48
n_head = 25
n_embd = 1600
# 4 * 1024 * 32 = 131,072 tokens per step (128K)
batch_size = 4
gradient_accumulation_steps = 32
learning_rate = 1.5e-4
