# v4's Fig. 3 (PAPER.md §6, "lazy layers do not transfer"): a 12-layer medium initialised from the 24-layer
# reference's last 12 blocks (12-23, its lazy layers, with its wte/lm_head, wpe and ln_f), trained 10K steps with
# the reference's recipe; PAPER.md: this start tracks the random one (transfer_gpt2m_12_random.py), the first
# layers (transfer_gpt2m_12_first.py) do better. The blocks move down 12 positions, so under
# scale_attn_by_inverse_layer_idx they see their new position's 1/(i+1) scale (inherit.py notes it).
# torchrun --standalone --nproc_per_node=8 train.py config/transfer_gpt2m_12_last.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/transfer_gpt2m_12_last'
wandb_run_name = 'gpt2m-12L-last-layers-10k'
init_from = 'out/gpt2m_24/ckpt.pt'  # the trained reference
inherit_layers = '12-23'
max_iters = 10000
lr_decay_iters = 10000
