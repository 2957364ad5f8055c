"""The reliability suite's machinery: a gunicorn shop, the emulator with a ledger, a black hole, drivers.

The short forms (``tests/test_reliability_*.py``) run in ``make test``; the long
forms (``tests/soak/test_soak.py``, marked ``soak``) run with ``make soak``.
"""
