"""Data shared by the wings: synthetic meta-tasks (``synthetic``) and real data sets (``datasets``)."""
