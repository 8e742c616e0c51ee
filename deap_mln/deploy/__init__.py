"""The deploy wing: evolved losses made cheap and inspectable.

``compiled`` (an MLN as a bicubic Hermite table), ``export`` (self-describing loss files),
``landscape`` (figures of a loss over the probabilities it sees).
"""
