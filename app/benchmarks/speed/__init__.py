"""Speed and memory of the tracker on generated clips: `scripts/bench.py` parses its options and calls one mode here.

`timing` wraps runners to time them, `pairs` opens a backend/precision pair (what this machine can run is
acl_models.select's answer), `tracking` times one tracked clip; each mode measures and prints in its own module:
`single` (one pair, then 1..N objects), `null_models` (the CPU side alone, and the memory over a long run),
`official` (each pair against the official predictor, one process per run) and `overlap` (sequential against
overlapped frames).
"""
