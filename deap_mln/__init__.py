"""deap_mln: evolve loss functions for classification with DEAP and PyTorch.

The names a user needs first, as ``deap.tools`` gathers DEAP's operators::

    import deap_mln

    run = deap_mln.evolve(deap_mln.preset("quick"), "runs/q")     # Adaptive-MLN (hybrid ES-GA)
    criterion = deap_mln.load_loss("runs/q/best_loss.pt")         # any saved loss, as an nn.Module
    deap_mln.meta_test(["runs/q/best_loss.pt", "ce"], "digits", "runs/mt")

The wings live in subpackages: ``mln`` (Meta-Loss Networks, ES and EDL), ``gp`` (symbolic
losses), ``taylor`` (TaylorGLO by DEAP's CMA-ES), ``metatest`` (fair comparisons against baselines), ``deploy`` (compiled tables,
export, plots), ``data`` (synthetic tasks and real data sets) and ``cli``. These names are
imported on first use, so ``import deap_mln`` stays light.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deap_mln.version import __version__

# public name -> module that defines it
_EXPORTS = {
    "load_loss": "deap_mln.saved_losses:load_saved_loss",
    "MLNLoss": "deap_mln.mln.network:MLNLoss",
    "MetaLossNetwork": "deap_mln.mln.network:MetaLossNetwork",
    "EvolutionConfig": "deap_mln.mln.config:EvolutionConfig",
    "preset": "deap_mln.mln.config:preset",
    "evolve": "deap_mln.mln.run:evolve",
    "resume": "deap_mln.mln.run:resume",
    "summarise_run": "deap_mln.mln.run:summarise_run",
    "build_toolbox": "deap_mln.mln.toolbox:build_toolbox",
    "GPConfig": "deap_mln.gp.config:GPConfig",
    "gp_preset": "deap_mln.gp.config:gp_preset",
    "evolve_gp": "deap_mln.gp.run:evolve_gp",
    "GPLoss": "deap_mln.gp.tree:GPLoss",
    "meta_test": "deap_mln.metatest.run:meta_test",
    "CompiledMLNLoss": "deap_mln.deploy.compiled:CompiledMLNLoss",
    "export_run": "deap_mln.deploy.export:export_run",
    "plot_loss": "deap_mln.deploy.landscape:plot_loss",
    "evolve_taylor": "deap_mln.taylor.run:evolve_taylor",
    "TaylorGLOLoss": "deap_mln.taylor.loss:TaylorGLOLoss",
}
__all__ = [
    "__version__", "load_loss", "MLNLoss", "MetaLossNetwork", "EvolutionConfig", "preset", "evolve", "resume",
    "summarise_run", "build_toolbox", "GPConfig", "gp_preset", "evolve_gp", "GPLoss", "meta_test", "CompiledMLNLoss",
    "export_run", "plot_loss", "evolve_taylor", "TaylorGLOLoss",
]

if TYPE_CHECKING:
    from deap_mln.deploy.compiled import CompiledMLNLoss
    from deap_mln.deploy.export import export_run
    from deap_mln.deploy.landscape import plot_loss
    from deap_mln.gp.config import GPConfig, gp_preset
    from deap_mln.gp.run import evolve_gp
    from deap_mln.gp.tree import GPLoss
    from deap_mln.metatest.run import meta_test
    from deap_mln.mln.config import EvolutionConfig, preset
    from deap_mln.mln.network import MetaLossNetwork, MLNLoss
    from deap_mln.mln.run import evolve, resume, summarise_run
    from deap_mln.mln.toolbox import build_toolbox
    from deap_mln.saved_losses import load_saved_loss as load_loss
    from deap_mln.taylor.loss import TaylorGLOLoss
    from deap_mln.taylor.run import evolve_taylor


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'deap_mln' has no attribute {name!r}")
    module, attribute = _EXPORTS[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
