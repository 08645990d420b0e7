"""Network-namespace lab for the collection's integration tests: see netlab.py and docs/lab.md."""
