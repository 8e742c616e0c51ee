"""The TaylorGLO wing: a loss as a third-order Taylor polynomial, searched with DEAP's CMA-ES.

``loss`` (the polynomial, :class:`TaylorGLOLoss`, its saved-loss format) -> ``config`` ->
``fitness`` (the invariant check, validation accuracy after brief training) -> ``search``
(``deap.cma.Strategy`` with ``deap.algorithms.eaGenerateUpdate``) -> ``run`` (the run directory).
"""
