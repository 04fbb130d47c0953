"""Fault drills on a stack of their own: `python -m ops.chaos` kills the credit worker again and again
while a mixed workload arrives, then checks the end state against the pure rules (ops/chaos/run.py).
`probes` holds what a drill looks at from outside the workers, shared with the outage tests."""
