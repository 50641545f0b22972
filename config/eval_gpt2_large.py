# Loss of OpenAI's gpt2-large on the fixed OpenWebText val windows (nanoGPT measured about 2.66 on its random windows).
# python train.py config/eval_gpt2_large.py
batch_size = 8
eval_windows = 2400  # the paper configs' 2,400 fixed windows of 1024 tokens, so the losses compare
eval_only = True
wandb_log = False
dataset = 'openwebtext'
init_from = 'gpt2-large'
