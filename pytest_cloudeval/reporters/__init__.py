"""Run reporters: each renders the typed run summary (``run_summary.RunSummary``) into one file.

Built-ins: run.json, summary.txt, JUnit XML and report.html. They are registered through the
``pytest_cloudeval_reporters`` hook (``builtins.py``) like every other extension point.
"""
