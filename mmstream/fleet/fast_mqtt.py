"""The collector's MQTT client: paho, with reads buffered and a batch's PUBACKs sent at once.

paho reads a message as three or more `recv` calls (one byte of packet type, the length byte by
byte, then the rest) and sends each PUBACK as its own packet with a wake-up byte to its loop:
about five system calls per event, which capped a collector well below what mosquitto hands
out. Here one `recv` fills a 256 kB buffer that the small reads are served from, and `ack_all`
queues a whole batch's PUBACKs as one write. Both lean on two private paho methods
(`_sock_recv`, `_packet_queue`), pinned by the tests in tests/fleet (every event exactly once).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho

READ_CHUNK = 256 * 1024
_PUBACK = 0x40


class BufferedClient(paho.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing of the old one is kept
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            self._rbuf, self._rpos = super()._sock_recv(max(bufsize, READ_CHUNK)), 0
            if not self._rbuf:
                return b""  # the connection closed
        start = self._rpos
        self._rpos = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start:self._rpos]

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        # paho reads a few packets per readable socket; what is already buffered must be read
        # too, or it would wait for the next byte from the broker (or the loop's timeout)
        rc = super().loop_read(max_packets)
        while rc == paho.MQTTErrorCode.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) \
                and self._sock is not None:
            rc = super().loop_read(64)
        return rc

    def ack_all(self, mids: Iterable[int]) -> None:
        """PUBACK (success) for every message id, as one packet of bytes on the wire."""
        packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
        if packet:
            self._packet_queue(_PUBACK, packet, 0, 0)
