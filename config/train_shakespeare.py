# A small GPT-2-BPE model on the built-in Shakespeare corpus, sized for a CPU (~10 minutes on this repo's 2-core test machine;
# at this width the 50304-token output layer is most of the compute).
# python prepare_shakespeare.py && python train.py config/train_shakespeare.py
out_dir = 'out/train_shakespeare'
dataset = 'shakespeare'
eval_interval = 100
eval_iters = 20
log_interval = 10
always_save_checkpoint = True

gradient_accumulation_steps = 1
batch_size = 8
block_size = 128

n_layer = 6
n_head = 4
n_embd = 128
dropout = 0.0
bias = False

learning_rate = 2e-3
max_iters = 300
lr_decay_iters = 300
min_lr = 2e-4
warmup_iters = 30
beta2 = 0.99
