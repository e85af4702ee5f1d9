"""An HTTP MJPEG server (multipart/x-mixed-replace, as IP cameras send) on a thread, for the stream tests."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "frame"


class MjpegServer:
    """Serves `frames` (RGB) in a loop at `fps` on http://127.0.0.1:PORT/stream.mjpg until `close()`."""

    def __init__(self, frames: list[np.ndarray], fps: float):
        jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
        stopped = threading.Event()
        self.served = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                index = 0
                try:
                    while not stopped.is_set():
                        jpeg = jpegs[index % len(jpegs)]
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        server.served += 1
                        index += 1
                        time.sleep(1.0 / fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                """Quiet."""

        self._stopped = stopped
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._http.serve_forever, name="mjpeg-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        self._http.shutdown()
        self._http.server_close()
