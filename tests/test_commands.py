"""The JSON box of `POST /api/track` and MQTT's `PREFIX/cmd` takes numbers only, and `--publish`'s prefix leaves
room for every topic the run publishes within MQTT's limit."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest

from app.live.commands import parse_command, parse_commands
from app.live.control import TrackController
from app.media.prompt import PromptError
from app.publish.mqtt import PublishError, parse_publish_url
from app.samurai.boxes import Box
from app.serve.hub import FrameHub
from app.serve.server import WebServer
from tests.live_helpers import free_port, http

STRING_BOXES = [["10", 10, 20, 20], [10, 10, 20, "20.5"], ["10,10", 20, 20], [" 10", 10, 20, 20]]


@pytest.mark.parametrize("box", STRING_BOXES)
def test_a_string_where_a_number_belongs_is_refused(box):
    for parse in (lambda b: parse_command({"box": b}), lambda b: parse_commands(json.dumps({"box": b}).encode())):
        with pytest.raises(PromptError, match="is not a JSON number"):
            parse(box)


def test_numbers_still_make_a_box():
    assert parse_command({"box": [10, 10.5, 20, 20]}).prompt.box == Box(10, 10.5, 20, 20)


def test_the_page_answers_400_to_a_string_box():
    controller = TrackController((64, 48))
    server = WebServer(controller, FrameHub(), "127.0.0.1", free_port())
    try:
        code, body = http("POST", f"http://127.0.0.1:{server.port}/api/track", {"box": ["10", 10, 20, 20]})
    finally:
        server.close()
    error = json.loads(body)["error"]
    assert code == 400 and '"10" is not a JSON number' in error and "\n" not in error
    assert controller.take_commands() == []


# The longest topic the run publishes: PREFIX/<object id up to 255>/prompt (/state and /track are shorter).
LONGEST_SUFFIX = "/255/prompt"
MQTT_TOPIC_LIMIT = 65535  # bytes of UTF-8 (MQTT 3.1.1 section 1.5.3)


def test_the_longest_prefix_accepted_publishes_and_one_byte_more_is_refused():
    longest = "a" * (MQTT_TOPIC_LIMIT - len(LONGEST_SUFFIX))
    address = parse_publish_url(f"mqtt://broker/{longest}")
    # paho checks the limit itself when publishing (without a connection the message is only queued).
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.publish(address.prefix + LONGEST_SUFFIX, "{}")
    with pytest.raises(ValueError):
        client.publish(address.prefix + "a" + LONGEST_SUFFIX, "{}")
    with pytest.raises(PublishError, match="must be at most"):
        parse_publish_url(f"mqtt://broker/{longest}a")
    with pytest.raises(PublishError, match="must be at most"):  # bytes of UTF-8, not characters
        parse_publish_url(f"mqtt://broker/{'é' * (len(longest) // 2 + 1)}")
