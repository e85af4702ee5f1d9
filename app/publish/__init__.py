"""The result stream for other programs: one JSON shape (events), sent as JSON lines, SSE and MQTT.

Everything here lives around the tracking loop: the loop hands each tracked frame
to `EventStream` (one of its outputs, on the output thread), which turns it into
records and gives them to every sink. No sink may block that thread.

What reads the loop's state rather than its results lives elsewhere: the health
check in `app/live/health.py`, the Prometheus metrics in `app/serve/metrics.py`.
`sd_notify.py` (systemd's READY and watchdog) is here as a way to tell another
program, the service manager, how the run is; it asks the health check.
"""
