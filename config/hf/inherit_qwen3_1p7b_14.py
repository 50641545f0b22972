# Inheritune on Qwen3-1.7B: its first 14 of 28 layers (per-head q/k norms, GQA 16/8 heads of 128, tied embedding),
# retrained on FineWeb-edu in Qwen's tokens. model_path='auto': model.py once it has Qwen3's q/k norms, transformers
# until then. Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_qwen3_1p7b_14.py
exec(open('config/hf/half_depth_fineweb_edu.py').read())
out_dir = 'out/inherit_qwen3_1p7b_14'
wandb_run_name = 'qwen3-1.7b-14L-inheritune'
init_from = 'models/Qwen3-1.7B-Base'
inherit_layers = 14
dataset = 'fineweb_edu_Qwen3-1.7B-Base'  # prepare_fineweb_edu.py --tokenizer=models/Qwen3-1.7B-Base
