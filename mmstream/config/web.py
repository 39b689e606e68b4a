"""The `web:` section: the live view the daemon serves (docs/web.md).

On by default, on loopback only, on a fixed port, so `ssh -L 8787:127.0.0.1:8787 device` is all
a user needs to watch. Serving it anywhere else needs a token: a camera feed must not be open
to the network by a typo.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, field_validator, model_validator

from mmstream.config.sources import Section

DEFAULT_WEB_PORT = 8787
MAX_FRAME_FPS = 2.0


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1; anything else (0.0.0.0, a LAN address) reaches others."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebConfig(Section):
    enabled: bool = Field(
        True, description="serve the live view while `run` or `replay --realtime` runs (a fast "
        "replay has nothing to watch and never serves it)")
    host: str = Field("127.0.0.1", description="bind address; any other than loopback needs "
                      "a token")
    port: int = Field(DEFAULT_WEB_PORT, ge=0, le=65535, description="0 picks a free port")
    token: str | None = Field(
        None, repr=False, min_length=16, description="required on every request (Authorization: "
        "Bearer, or ?token=); prefer MMSTREAM_WEB__TOKEN; required off loopback")
    public_url: str | None = Field(
        None, description="the address a browser elsewhere uses (a reverse proxy's https://…), "
        "linked from Home Assistant's device page; unset: http://<host>:<port>/")
    frame_fps: float = Field(
        1.0, gt=0, le=MAX_FRAME_FPS, description="at most this many camera pictures a second "
        "(JPEG, encoded only while someone watches)")
    history_s: float = Field(300.0, gt=0, description="emotion and valence chart: this long")
    max_events: int = Field(50, ge=1, le=1000, description="last events kept per stream")
    max_transcripts: int = Field(30, ge=1, le=1000, description="utterances kept per stream")

    @field_validator("token", mode="before")
    @classmethod
    def _token_is_text(cls, value: Any) -> Any:
        # An environment value is read as YAML: 12345 would become a number, 0123 another one.
        if value is not None and not isinstance(value, str):
            raise ValueError("must be text: quote it in YAML")
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> WebConfig:
        if self.enabled and not is_loopback(self.host) and not self.token:
            raise ValueError(f"web.host {self.host} is reachable from other machines: set "
                             "web.token (or MMSTREAM_WEB__TOKEN) to a secret of 16 or more "
                             "characters, or keep the host on 127.0.0.1 and use an SSH "
                             "tunnel (docs/web.md)")
        return self
