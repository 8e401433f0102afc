"""Where model weights come from: real checkpoints and synthetic ones of the same shapes."""
