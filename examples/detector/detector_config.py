# Producer configuration of the example detector (any content is allowed).
backbone = "resnet18"
learning_rate = 0.01
batch_size = 16
