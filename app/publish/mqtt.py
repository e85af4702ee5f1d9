"""`--publish mqtt://[user:pass@]host[:port]/PREFIX` (or mqtts://): the result stream on an MQTT broker.

    PREFIX/<id>/track   every tracked frame's record (QoS 0)
    PREFIX/<id>/state   state changes (QoS 1, retained: a late subscriber sees the last state)
    PREFIX/<id>/prompt  each prompt applied to the object (QoS 1)
    PREFIX/status       `online`, and `offline` when the run ends or dies (retained; the Last Will)
    PREFIX/cmd          commands in, the JSON of app/live/commands.py (the broker's authentication guards it);
                        they reach the loop's own frame history, with or without --serve
    PREFIX/error        why a command was refused (QoS 1): the reason its warning line gives, for the sender,
                        also when the loop refuses it later (its frame fell out of the history meanwhile)

A maintained client (paho-mqtt) runs its own network thread. A broker that is down
at the start or drops mid-run never stops tracking: the client reconnects with
backoff, messages wait in a bounded buffer meanwhile (those that do not fit are
counted as lost) and one line is logged when the broker goes and one when it is
back. A broker that restarts without persistence has forgotten the retained
states, so each reconnection publishes every object's last state again. The
password never leaves this module: logs show the URL masked.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from loguru import logger

from app.live.commands import parse_commands
from app.live.control import TrackController
from app.media.credentials import mask_credentials
from app.media.outputs import MAX_OBJECT_ID
from app.publish.events import RECORD_TYPES, STATE, TRACK, Record

SCHEMES = {"mqtt": 1883, "mqtts": 8883}
QOS_TRACK, QOS_STATE = 0, 1
ONLINE, OFFLINE = "online", "offline"
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 8
# Messages held for the broker while it is away: about a minute of one object at 30 FPS.
MAX_QUEUED = 2000
# How long closing waits for the broker to take the last messages (`offline`, the final states).
FLUSH_S = 3.0
# A command is a few hundred bytes of JSON; a larger payload is refused unread (docs/service.md).
MAX_COMMAND_BYTES = 64 * 1024
# How much of a refused command (or of the reason, which may quote it) a log line and an error record show.
SHOWN_CHARS = 200
ERROR = "error"
_WILDCARDS = ("+", "#")


def shorten(text: str) -> str:
    """`text` as one bounded line: its two ends and its length when it is longer than `SHOWN_CHARS`."""
    if len(text) <= SHOWN_CHARS:
        return text
    half = SHOWN_CHARS // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters, shortened)"


class PublishError(ValueError):
    """A --publish URL that cannot be used; the one-line message says what to write instead."""


@dataclass(frozen=True)
class BrokerAddress:
    url: str
    tls: bool
    host: str
    port: int
    user: str | None
    password: str | None
    prefix: str

    @property
    def shown(self) -> str:
        return mask_credentials(self.url)


# A topic is a UTF-8 string of at most 65535 bytes (MQTT 3.1.1 section 1.5.3, 5.0 section 1.5.4); the longest
# this run publishes is PREFIX/<the largest object id>/<record type>.
MAX_TOPIC_BYTES = 65535
LONGEST_SUFFIX_BYTES = len(f"/{MAX_OBJECT_ID}/") + max(map(len, RECORD_TYPES))


def parse_publish_url(url: str) -> BrokerAddress:
    """`mqtt://[user:pass@]host[:port]/PREFIX`; anything else (or no paho-mqtt) is a `PublishError` naming it."""
    try:
        import paho.mqtt.client  # noqa: F401 - checked here, before any model loads
    except ImportError:
        raise PublishError("--publish needs the publish extra (paho-mqtt): pip install -e '.[publish]'") from None
    shown = mask_credentials(url)
    usage = "write --publish mqtt://HOST[:PORT]/PREFIX, with USER:PASS@ before HOST if the broker asks (mqtts: TLS)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PublishError(f"--publish {shown} cannot be read ({exc}); {usage}") from None
    if parts.scheme not in SCHEMES:
        raise PublishError(f"--publish {shown}: scheme {parts.scheme or '(none)'!r} is not mqtt or mqtts; {usage}")
    if not parts.hostname:
        raise PublishError(f"--publish {shown} names no broker host; {usage}")
    prefix = parts.path.strip("/")
    if not prefix:
        raise PublishError(f"--publish {shown} has no topic prefix; {usage}")
    if any(wildcard in prefix for wildcard in _WILDCARDS) or parts.query or "#" in url:
        raise PublishError(f"--publish {shown}: topic prefix {prefix!r} may hold no +, # or ?; {usage}")
    if "\0" in prefix or len(prefix.encode()) > MAX_TOPIC_BYTES - LONGEST_SUFFIX_BYTES:
        raise PublishError(f"--publish: the topic prefix ({len(prefix.encode())} bytes) must be at most "
                           f"{MAX_TOPIC_BYTES - LONGEST_SUFFIX_BYTES} bytes of UTF-8 without NUL, so that its "
                           f"topics fit MQTT's {MAX_TOPIC_BYTES}; use a shorter prefix")
    return BrokerAddress(url, parts.scheme == "mqtts", parts.hostname, port or SCHEMES[parts.scheme],
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password is not None else None, prefix)


class MqttPublisher:
    """A result-stream sink on a broker, and the broker's `PREFIX/cmd` as a source of commands."""

    def __init__(self, address: BrokerAddress, controller: TrackController):
        import paho.mqtt.client as mqtt

        self.address, self.controller = address, controller
        self.lost = 0
        self._closing = False
        self._lost_at_drop = 0
        self._gone_at: float | None = None
        self._connected = threading.Event()
        # The retained messages the run has published (each object's last state), by topic, to publish again
        # after a reconnection; written by the output thread, read by the network thread.
        self._retained: dict[str, str] = {}
        self._retained_lock = threading.Lock()
        self._announced = False
        self._ok = mqtt.MQTT_ERR_SUCCESS
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if address.user is not None:
            self._client.username_pw_set(address.user, address.password)
        if address.tls:
            self._client.tls_set()
        self._client.will_set(self._topic("status"), OFFLINE, qos=QOS_STATE, retain=True)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.max_queued_messages_set(MAX_QUEUED)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect_async(address.host, address.port, KEEPALIVE_S)
        self._client.loop_start()
        logger.info("publishing to {} (topics {}/...)", address.shown, address.prefix)

    def _topic(self, *parts: object) -> str:
        return "/".join([self.address.prefix, *map(str, parts)])

    # -- the client's network thread ----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # Wrong credentials or a refused client: paho retries; say it once per state change.
            if self._gone_at is None:
                self._gone_at = time.monotonic()
                logger.warning("{} refused the connection ({}); retrying", self.address.shown, reason_code)
            return
        # `online` goes out once the broker has acknowledged the command subscription (_on_subscribe):
        # a controller that answers `online` with a command must not lose it.
        client.subscribe(self._topic("cmd"), qos=QOS_STATE)
        if self._gone_at is not None:
            logger.info("MQTT broker {} is back after {:.1f} s; {} messages lost meanwhile", self.address.shown,
                        time.monotonic() - self._gone_at, self.lost - self._lost_at_drop)
            self._gone_at = None
        self._connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """`online`, and after a reconnection every retained state again, behind the messages queued meanwhile."""
        client.publish(self._topic("status"), ONLINE, qos=QOS_STATE, retain=True)
        if self._announced:
            with self._retained_lock:
                retained = list(self._retained.items())
            for topic, payload in retained:
                client.publish(topic, payload, qos=QOS_STATE, retain=True)
            logger.debug("published {} retained states again on {}", len(retained), self.address.shown)
        self._announced = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._gone_at is None and not self._closing:
            self._gone_at = time.monotonic()
            self._lost_at_drop = self.lost
            logger.warning("MQTT broker {} went away ({}); tracking goes on, reconnecting", self.address.shown,
                           reason_code)

    def _on_connect_fail(self, client, userdata) -> None:
        if self._gone_at is None:  # down at the start (a drop mid-run was logged by _on_disconnect)
            self._gone_at = time.monotonic()
            self._lost_at_drop = self.lost
            logger.warning("MQTT broker {} cannot be reached; tracking goes on, retrying", self.address.shown)

    def _on_message(self, client, userdata, message) -> None:
        """A command; a bad one is one warning and an error record, never an exception in the client's thread."""
        payload = message.payload
        if len(payload) > MAX_COMMAND_BYTES:
            start = payload[:SHOWN_CHARS].decode(errors="replace")
            self._refuse(message.topic, f"{len(payload)} bytes, over the {MAX_COMMAND_BYTES}-byte limit of a "
                                        f"command; it begins {start!r}")
            return
        try:
            self._command(message.topic, payload)
        except Exception as exc:  # noqa: BLE001 - PromptError, or anything: a command must never end the thread
            self._refuse(message.topic, shorten(str(exc)))

    def _refuse(self, topic: str, reason: str) -> None:
        logger.warning("ignored a command on {}: {}", topic, reason)
        self._error_record(topic, reason)

    def _error_record(self, topic: str, reason: str) -> None:
        self._client.publish(self._topic(ERROR), json.dumps({"type": ERROR, "topic": topic, "error": reason}),
                             qos=QOS_STATE)

    def _command(self, topic: str, payload: bytes) -> None:
        """Parsed and checked as every door's commands are; the loop applies them between two frames. One the loop
        refuses later is an error record here, the loop's own warning its one log line."""
        commands = self.controller.submit(parse_commands(payload),
                                          lambda reason: self._error_record(topic, shorten(reason)))
        logger.info("{} on {}", ", ".join(f"{c.kind} for object {c.prompt.obj_id}" if c.prompt else "stop"
                                          for c in commands), topic)

    # -- the loop's output thread ------------------------------------------------------------

    def publish(self, records: list[Record]) -> None:
        for record in records:
            kind = record["type"]
            topic, payload = self._topic(record["id"], kind), json.dumps(record)
            if kind == STATE:
                with self._retained_lock:
                    self._retained[topic] = payload
            qos = QOS_TRACK if kind == TRACK else QOS_STATE
            info = self._client.publish(topic, payload, qos=qos, retain=kind == STATE)
            if info.rc != self._ok:
                self.lost += 1

    def close(self) -> None:
        """Say `offline` (the Will is only for a death), give the broker the last messages, stop the thread."""
        self._closing = True
        if self._connected.is_set():
            info = self._client.publish(self._topic("status"), OFFLINE, qos=QOS_STATE, retain=True)
            try:
                info.wait_for_publish(FLUSH_S)
            except RuntimeError:  # the connection went while waiting
                pass
        self._client.disconnect()
        self._client.loop_stop()
        if self.lost:
            logger.warning("{} messages could not be published to {}", self.lost, self.address.shown)
