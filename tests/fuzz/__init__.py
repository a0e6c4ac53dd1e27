"""Fuzzing of Lucida's import path (scan, header parse, plan, decode).

``target.py`` holds the contract and the pipeline (no atheris needed, so the
regression tests import it in CI); ``run.py`` drives atheris/libFuzzer;
``corpus.py`` builds the seed corpus outside the repository. See README.md.
"""
