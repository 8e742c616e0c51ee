"""The package's version: a leaf, so that any module can record it without importing the package root.

``setup.cfg`` reads it statically (``version = attr: deap_mln.version.__version__``).
"""
__version__ = "0.1.0"
