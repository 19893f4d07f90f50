"""Training: the loops, losses and schedules, the teacher LM, the audio encoder's pretraining, the embedding cache and
the encoders they start from."""
