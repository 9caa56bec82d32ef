"""The benchmark harness behind `benchmarks/run.py`: processes, nginx, wrk, wakeproxy, report.

Stdlib only, so it runs wherever the project's virtualenv runs. Nothing here imports
wakeproxy: it is measured from the outside, as a user would run it. The two in-process
measurements (the sweeper's tick, import costs) are scripts in `benchmarks/probes/`,
run as subprocesses with the interpreter that runs wakeproxy.
"""
