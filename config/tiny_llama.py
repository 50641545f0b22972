# The Llama path end to end on a laptop (README, "Other model families"): train the tiny random Llama folder of
# tests/tiny_llama.py on Shakespeare in its own BPE tokens, then inherit, grow and export it. CPU, float32, ~1 min a run.
#   python tests/tiny_llama.py --out_dir=out/tiny_llama && python prepare_shakespeare.py --tokenizer=out/tiny_llama
#   python train.py config/tiny_llama.py
out_dir = 'out/tiny_llama_ref'
init_from = 'out/tiny_llama'  # the HF folder: its 4 layers, embedding, final norm and untied lm_head
dataset = 'shakespeare_tiny_llama'
device = 'cpu'
dtype = 'float32'
compile = False

block_size = 128
batch_size = 16
gradient_accumulation_steps = 1
learning_rate = 3e-3
min_lr = 3e-4
max_iters = 300
lr_decay_iters = 300
warmup_iters = 20
beta2 = 0.99

eval_interval = 100
eval_iters = 20
log_interval = 50
