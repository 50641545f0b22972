# Inheritune on Llama-3.2-1B: its first 8 of 16 layers (GQA 32/8 heads, tied embedding, llama3 RoPE scaling) with the
# embedding and final norm, retrained on FineWeb-edu in Llama 3's own tokens. model_path='auto': model.py once it has
# llama3 RoPE scaling, transformers (hf_adapter.py) until then. Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_llama32_1b_8.py
exec(open('config/hf/half_depth_fineweb_edu.py').read())
out_dir = 'out/inherit_llama32_1b_8'
wandb_run_name = 'llama32-1b-8L-inheritune'
init_from = 'models/Llama-3.2-1B'
inherit_layers = 8
dataset = 'fineweb_edu_Llama-3.2-1B'  # prepare_fineweb_edu.py --tokenizer=models/Llama-3.2-1B
