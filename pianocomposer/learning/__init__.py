"""Learning: the network, training arrays, the training loop, devices, and the model bundle it writes
(stage 2, `train`)."""
