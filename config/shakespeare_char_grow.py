# Row 4: Algorithm 1 on the reference: start at L/2 = 4 layers, grow by 2, every round rebuilt from the reference and
# trained with its budget and schedule, until the val loss reaches the reference's.
exec(open('config/shakespeare_char_ref.py').read())
out_dir = 'out/shakespeare_char/grow_s1337'
reference = 'out/shakespeare_char/ref_8_s1337/ckpt.pt'
step_layers = 2
grow_mode = 'paper'
