"""The stages of ``benchmarks/pareto.py``, one module each (``main(argv)`` with its own flags)."""
