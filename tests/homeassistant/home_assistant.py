"""A real Home Assistant for tests: started from its own virtualenv on loopback, onboarded and
given the MQTT integration through its REST API, as a user does in its web UI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mmstream.demo_broker import free_port
from tests.conftest import wait_until

VENV_ENV = "MMSTREAM_HA_VENV"  # where .ci/run puts Home Assistant's virtualenv
DEFAULT_VENV = Path("~/.cache/mmstream/home-assistant").expanduser()  # as .ci/run makes it
CONFIGURATION = """homeassistant:
  name: mmstream test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
"""


def home_assistant_venv() -> Path | None:
    venv = Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)
    return venv if (venv / "bin" / "hass").is_file() else None


class HomeAssistant:
    def __init__(self, venv: Path, folder: Path) -> None:
        self.venv, self.folder = venv, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        log = (self.folder / "stdout.log").open("wb")
        self.process = subprocess.Popen(
            [str(self.venv / "bin" / "hass"), "-c", str(self.folder), "--skip-pip"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._up() or self._died(), 180, "Home Assistant's HTTP API")
        assert self.process.poll() is None, self.log()

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/onboarding", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log(self) -> str:
        path = self.folder / "home-assistant.log"
        return path.read_text()[-5000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- REST ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False,
                raw: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None and form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.url}{path}", data, headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            content = answer.read()
        return content if raw else (json.loads(content) if content else None)

    def onboard(self) -> None:
        """Create the owner account, as the first page of the web UI does, and log in."""
        client = f"{self.url}/"
        code = self.request("POST", "/api/onboarding/users", {
            "client_id": client, "name": "Test", "username": "test",
            "password": "test-password", "language": "en"})["auth_code"]
        self.token = self.request("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": code, "client_id": client},
            form=True)["access_token"]
        # The other onboarding steps set up Home Assistant's default integrations (weather,
        # radio, ...), which this virtualenv does not carry: the owner and a token suffice.

    def add_mqtt(self, port: int, username: str, password: str) -> None:
        flow = self.request("POST", "/api/config/config_entries/flow",
                            {"handler": "mqtt", "show_advanced_options": False})
        done = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {
            "broker": "127.0.0.1", "port": port, "username": username, "password": password})
        assert done.get("type") == "create_entry", done

    def states(self) -> dict[str, dict[str, Any]]:
        return {state["entity_id"]: state for state in self.request("GET", "/api/states")}

    def entity(self, domain: str, suffix: str) -> dict[str, Any] | None:
        """The state of the one entity `<domain>.<...><suffix>`, if it exists."""
        found = [s for entity_id, s in self.states().items()
                 if entity_id.startswith(f"{domain}.") and entity_id.endswith(suffix)]
        return found[0] if len(found) == 1 else None

    def service(self, domain: str, service: str, **data: Any) -> None:
        self.request("POST", f"/api/services/{domain}/{service}", data)

    def camera_image(self, entity_id: str) -> bytes:
        """The camera's picture, or b"" while it has none (Home Assistant answers 500)."""
        try:
            return self.request("GET", f"/api/camera_proxy/{entity_id}", raw=True)
        except urllib.error.HTTPError:
            return b""


def copy_log(home: HomeAssistant, where: Path) -> None:
    """Keep Home Assistant's log beside a failing test's files."""
    log = home.folder / "home-assistant.log"
    if log.exists():
        shutil.copy(log, where / "home-assistant.log")
