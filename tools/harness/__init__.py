"""Harnesses that test the whole shop from outside: order storms (``storm``)
for the crash test (``chaos``), the scale-out test (``scale``) and the
cluster test (``cluster``, ``cluster_test``); the fuzzer (``fuzz``); the
benchmark (``bench``, ``bench_floor``, ``bench_chart``, ``dataset``, ``wrk/``,
and ``bench_history.json``, the record of every change made for speed); and
``ci_summary``, the test totals that end CI's log.

They start the shop through ``tools.launch`` and read it with ``tools.dlq``;
nothing outside ``tools.harness`` and the tests imports them.
"""
