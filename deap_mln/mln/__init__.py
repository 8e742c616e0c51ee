"""The MLN wing: Meta-Loss Networks evolved by the hybrid ES-GA (Adaptive-MLN), ES or EDL.

The data flows through the modules in this order: ``config`` -> ``toolbox`` (``operators``,
``dynamic_update``) -> ``algorithms`` -> ``fitness`` (``inner``, ``population_loss``; on
K-class tasks ``check``, ``kclass_loss`` and ``pair_table``; ``edl`` for the ranking fitness)
-> ``checkpoint`` -> ``run`` (``plots``); ``network`` is the MLN itself and its saved-loss
format, ``variants`` compares variants over seeds.
"""
from deap_mln.mln.network import MetaLossNetwork, MLNLoss, load_loss, save_loss

__all__ = ["MLNLoss", "MetaLossNetwork", "load_loss", "save_loss"]
