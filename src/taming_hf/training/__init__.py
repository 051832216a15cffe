"""Everything that exists only for training: data for the prior, the prior's Trainer, callbacks."""
