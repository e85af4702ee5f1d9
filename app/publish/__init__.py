"""The result stream for other programs: one JSON shape (events), sent as JSON lines, SSE and MQTT; metrics.

Everything here lives around the tracking loop: the loop hands each tracked frame
to `EventStream` (one of its outputs, on the output thread), which turns it into
records and gives them to every sink. No sink may block that thread.
"""
