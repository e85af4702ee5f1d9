"""A real RTSP server (GStreamer's) that streams a generated scene, for the stream tests.

    /usr/bin/python3 tests/rtsp_scene_server.py PORT [--user U --password P]

Runs with the system Python, which has GStreamer's bindings (Debian: python3-gi
gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly gstreamer1.0-rtsp); it needs
nothing from the project. The scene is a red square sliding back and forth at a
fixed height over a grey background, H.264 over RTP at `rtsp://127.0.0.1:PORT/scene`.
Prints "ready" once it listens.
"""

from __future__ import annotations

import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

WIDTH, HEIGHT, FPS = 320, 240, 15
GREY = 128
TARGET_RGB = (200, 40, 40)
TARGET_SIZE = 40
TARGET_Y = 100
# The square travels between these x positions, this many pixels per frame.
LEFT, RIGHT, STEP = 20, 260, 4
MOUNT = "/scene"
PIPELINE = (
    "( appsrc name=scene is-live=true block=true format=time "
    f"caps=video/x-raw,format=RGB,width={WIDTH},height={HEIGHT},framerate={FPS}/1 "
    "! videoconvert ! video/x-raw,format=I420 "
    f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def target_x(frame: int) -> int:
    """Triangle wave between LEFT and RIGHT."""
    span = (RIGHT - LEFT) // STEP
    phase = frame % (2 * span)
    return LEFT + STEP * (phase if phase < span else 2 * span - phase)


def render(frame: int) -> bytes:
    picture = bytearray(bytes([GREY]) * (WIDTH * HEIGHT * 3))
    row = bytes(TARGET_RGB) * TARGET_SIZE
    x = target_x(frame)
    for y in range(TARGET_Y, TARGET_Y + TARGET_SIZE):
        start = (y * WIDTH + x) * 3
        picture[start : start + len(row)] = row
    return bytes(picture)


def on_media_configure(_factory, media) -> None:
    source = media.get_element().get_child_by_name("scene")
    state = {"frame": 0, "start": time.monotonic()}
    duration = Gst.SECOND // FPS

    def need_data(appsrc, _length) -> None:
        # Paced like a camera: the server would otherwise send frames as fast as it can encode them.
        due = state["start"] + state["frame"] / FPS
        time.sleep(max(0.0, due - time.monotonic()))
        buffer = Gst.Buffer.new_wrapped(render(state["frame"]))
        buffer.pts = buffer.dts = state["frame"] * duration
        buffer.duration = duration
        state["frame"] += 1
        appsrc.emit("push-buffer", buffer)

    source.connect("need-data", need_data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_service(str(args.port))
    server.set_address("127.0.0.1")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    factory.connect("media-configure", on_media_configure)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.from_string("viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0]
        )
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
