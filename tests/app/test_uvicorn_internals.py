"""The uvicorn internals that app/guard/server.py and shutdown.py build on: pinned, and checked to be unchanged.

``GuardedProtocol`` subclasses uvicorn's private ``HttpToolsProtocol`` (head and
body limits, deadlines, problem answers) and ``DrainingServer`` replaces parts of
``uvicorn.Server`` (signals, drain, shutdown). A release that reworks any of the
methods they override or call could silently drop a limit or break start-up, so:
the installed releases must be the pinned ones, and the source of every such
method must be the source they were written and tested against. When this test
fails after an upgrade, read the changed methods, adapt the subclasses, run
tests/app/test_server.py, tests/app/test_shutdown.py and the attack suite, then
update the pin and the fingerprints below.
"""

from __future__ import annotations

import hashlib
import inspect
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import Server, ServerState

from app.guard.server import TESTED_RELEASES, GuardedProtocol, main, untested_releases
from app.guard.shutdown import DrainingServer
from tests.service_process import ROOT

# sha256 (first 16 hex digits) of the source of each uvicorn 0.55.0 method the subclasses override or rely on
FINGERPRINTS = {
    "HttpToolsProtocol.__init__": "4f08999410347141",
    "HttpToolsProtocol.connection_made": "6efb565ff3d36b91",
    "HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
    "HttpToolsProtocol.data_received": "010a7ae59a5d3b1a",
    "HttpToolsProtocol.send_400_response": "ae5a4a3782b646fd",
    "HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
    "HttpToolsProtocol.on_url": "37be44e962b04ca8",
    "HttpToolsProtocol.on_header": "1e86ebb6cea0458c",
    "HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    "HttpToolsProtocol.on_body": "dba9c32aeba35b6a",
    "HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
    "HttpToolsProtocol.on_response_complete": "64e254f28e389e76",
    "HttpToolsProtocol.shutdown": "d7351fa33f00d430",
    "HttpToolsProtocol.timeout_keep_alive_handler": "8b53bf5f2e202970",
    "HttpToolsProtocol._unset_keepalive_if_required": "00a6a4e47214e68e",
    "HttpToolsProtocol._should_upgrade": "8fcad1ab8e096739",
    "HttpToolsProtocol.handle_websocket_upgrade": "d5da377bfc77e588",
    "HttpToolsProtocol._unsupported_upgrade_warning": "55bbd2762b189d9a",
    "RequestResponseCycle.__init__": "4d2f220910c33c12",
    "RequestResponseCycle.run_asgi": "0f33f2449a444bc2",
    "RequestResponseCycle.send": "abdd8601b326a8da",
    "RequestResponseCycle.receive": "8124ae006be71184",
    "Server.__init__": "c150b55284f7511e",
    "Server._serve": "4575b7a50adfede8",
    "Server.startup": "2aa1d70a244bfcf2",
    "Server.main_loop": "afccb353a119333f",
    "Server.on_tick": "60ea49b06ccf68c1",
    "Server.shutdown": "5d01b8b1f116a786",
    "Server.capture_signals": "e1bbcd4770d1c887",
    "Server.handle_exit": "553276efa26e09ea",
    "ServerState.__init__": "8daf3a9b4e4e4245",
}
CLASSES = {cls.__name__: cls for cls in (HttpToolsProtocol, RequestResponseCycle, Server, ServerState)}


def fingerprint(qualified_name: str) -> str:
    class_name, method = qualified_name.split(".")
    source = inspect.getsource(getattr(CLASSES[class_name], method))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_uvicorn_internals_are_the_ones_the_server_was_written_against(name: str) -> None:
    assert fingerprint(name) == FINGERPRINTS[name], (
        f"uvicorn's {name} changed (uvicorn {metadata.version('uvicorn')}): app/guard/server.py and shutdown.py "
        "override or call it; review them against the new source before updating this fingerprint"
    )


def test_every_uvicorn_method_the_subclasses_override_is_fingerprinted() -> None:
    overridden = {
        f"{base.__name__}.{name}"
        for subclass, base in ((GuardedProtocol, HttpToolsProtocol), (DrainingServer, Server))
        for name in vars(subclass)
        if callable(getattr(base, name, None))
    }
    assert overridden - set(FINGERPRINTS) == set()


def test_the_installed_releases_are_the_pinned_and_tested_ones() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {Requirement(line).name: Requirement(line).specifier for line in dependencies}
    for name, prefix in TESTED_RELEASES.items():
        installed = metadata.version(name)
        assert installed in pins[name], f"{name} {installed} is outside the pin {pins[name]}"
        assert installed.startswith(prefix)
        next_minor = prefix.split(".")[0] + "." + str(int(prefix.split(".")[1]) + 1)
        assert f"{prefix}0" in pins[name] and f"{next_minor}.0" not in pins[name], f"pin {pins[name]} vs {prefix}x"
    assert untested_releases() == []


def test_the_server_refuses_to_start_on_an_untested_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.99.0" if name == "uvicorn" else real_version(name))
    with pytest.raises(SystemExit, match=r"tested with uvicorn 0\.55\.x.*not uvicorn 0\.99\.0"):
        main(["--port", "1"])
