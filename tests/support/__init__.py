"""What several test modules share: helpers, sample data and builders (no tests here).

Fixtures are in ``tests/conftest.py``; the loopback DataCue stand-in is ``benchmarks/sink.py``.
"""
