"""The meta-test wing: train classifiers with evolved and baseline losses and compare them fairly.

``baselines`` and ``models`` -> ``train`` (one classifier per loss and seed) -> ``report``
(paired statistics, files, figure) -> ``run`` (:func:`meta_test`, the whole comparison).
"""
