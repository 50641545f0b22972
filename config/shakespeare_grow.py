# Algorithm 1 on the CPU reproduction's reference: start at L/2 = 6 layers, grow by 2, every round trained with the
# reference's own budget and schedule, until the val loss reaches the reference's.
exec(open('config/shakespeare_ref.py').read())
out_dir = 'out/shakespeare/grow'
reference = 'out/shakespeare/ref_12/ckpt.pt'
step_layers = 2
grow_mode = 'paper'
