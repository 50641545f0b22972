# A small GPT-2-BPE model on the built-in Shakespeare corpus, sized for a CPU in minutes.
# python prepare_shakespeare.py && python train.py config/train_shakespeare.py
out_dir = 'out/shakespeare'
dataset = 'shakespeare'
eval_interval = 100
eval_iters = 20
log_interval = 10
always_save_checkpoint = True

gradient_accumulation_steps = 1
batch_size = 16
block_size = 128

n_layer = 6
n_head = 4
n_embd = 256
dropout = 0.0
bias = False

learning_rate = 1.5e-3
max_iters = 500
lr_decay_iters = 500
min_lr = 1.5e-4
warmup_iters = 50
beta2 = 0.99
