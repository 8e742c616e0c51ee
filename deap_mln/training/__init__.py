"""What the user trains and how a loss is scored by it: models, the one trainer, the faithful fitness."""
