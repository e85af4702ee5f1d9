"""The result stream for other programs: one JSON shape (events), sent as JSON lines, SSE and MQTT.

Everything here lives around the tracking loop: the loop hands each tracked frame
to `EventStream` (one of its outputs, on the output thread), which turns it into
records and gives them to every sink. No sink may block that thread.

`metrics.py` (Prometheus) and `health.py` read the loop's state rather than its
results and are served by `app/serve`; with `sd_notify.py` (systemd's watchdog,
driven by the health check) they are here until they move, as docs/architecture.md says.
"""
