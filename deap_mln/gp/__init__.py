"""The GP wing: symbolic losses (DEAP expression trees) by efficiency-based or standard GP.

``tree`` (language, compile, functional check) -> ``config`` -> ``search`` (toolbox, loops;
``fitness`` trains classifiers, ``checkpoint`` holds the state) -> ``run`` (the run directory).
"""
