# The CPU reproduction's reference: a 12-layer GPT-2-BPE model on the built-in Shakespeare corpus.
# python train.py config/shakespeare_ref.py   (reproduce_shakespeare.sh runs the whole pipeline)
out_dir = 'out/shakespeare/ref_12'
dataset = 'shakespeare'
device = 'cpu'
compile = False

n_layer = 12
n_head = 4
n_embd = 128
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True  # as the paper's models

batch_size = 8
block_size = 128  # >= the probe's 100-token sequences
gradient_accumulation_steps = 1

learning_rate = 2e-3
min_lr = 2e-4
max_iters = 400
lr_decay_iters = 400
warmup_iters = 40
beta2 = 0.99
weight_decay = 0.1
grad_clip = 1.0

eval_interval = 100
eval_iters = 20  # 160 fixed val windows
log_interval = 50
