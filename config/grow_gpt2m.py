# Algorithm 1 on the GPT-2 medium family: 12 -> 14 -> 16 layers, every round inherited from the 24-layer reference
# and trained 100K steps, until the val loss matches the reference's (PAPER.md: 2.87, 2.84, 2.81).
# torchrun --standalone --nproc_per_node=8 grow.py config/grow_gpt2m.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/grow_gpt2m'
wandb_run_name = 'gpt2m-grow'
reference = 'out/gpt2m_24/ckpt.pt'
reference_val_loss = None  # measured on the same fixed val windows as the rounds
start_layers = 12
step_layers = 2
max_layers = 24
grow_mode = 'paper'
