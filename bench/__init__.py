"""Benchmarks: `make bench` (python -m bench) runs them and writes bench/results/*.json."""

import os

# Benchmarks run on a development machine: the services they start (which inherit the
# environment) accept the development keys and secrets, and so does the token they sign.
os.environ.setdefault("CC_DEVELOPMENT", "1")
