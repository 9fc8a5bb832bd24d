"""Composing from a bundle: the sampler stepping the network, a musician's controls, and four-part
writing under a melody."""
