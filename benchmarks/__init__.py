"""Benchmarks of netmagic.netfilter: control-plane speed at scale and data-plane cost.

Run as root from the repository root: `.venv/bin/python -m benchmarks.run --help`.
Not part of the test suite.
"""
