"""Fine-tuning: losses and the Trainer subclass."""
