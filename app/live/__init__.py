"""The loop that runs the tracker live: decoding, tracking and writing on their own threads, the controller that the page and the keyboard talk to, latency figures and the desktop window."""
