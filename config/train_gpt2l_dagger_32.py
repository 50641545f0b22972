# Inheritune reference on FineWeb-edu (PAPER.md's large-dagger): 32 layers / 20 heads / 1280 wide.
# python prepare_fineweb_edu.py && torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2l_dagger_32.py
exec(open('config/train_gpt2l_36.py').read())
out_dir = 'out/gpt2l_dagger_32'
wandb_run_name = 'gpt2l-dagger-32L-reference'
dataset = 'fineweb_edu'
n_layer = 32
