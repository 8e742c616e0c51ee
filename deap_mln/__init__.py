"""deap_mln: evolve loss functions for classification with DEAP and PyTorch."""
__version__ = "0.1.0"
