"""Running mieruka over datasets on many machines; each engine is an optional extra, imported when asked for.

:mod:`mieruka.scale.ray` is the Ray Data adapter (``pip install "mieruka[ray]"``).
"""
