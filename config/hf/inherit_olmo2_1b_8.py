# Inheritune on OLMo-2-0425-1B: its first 8 of 16 layers (norms after each sublayer, q/k norms over the whole width,
# untied lm_head) through transformers (hf_adapter.py), retrained on FineWeb-edu in OLMo 2's tokens.
# Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_olmo2_1b_8.py
exec(open('config/hf/half_depth_fineweb_edu.py').read())
out_dir = 'out/inherit_olmo2_1b_8'
wandb_run_name = 'olmo2-1b-8L-inheritune'
init_from = 'models/OLMo-2-0425-1B'
inherit_layers = 8
dataset = 'fineweb_edu_OLMo-2-0425-1B'  # prepare_fineweb_edu.py --tokenizer=models/OLMo-2-0425-1B
