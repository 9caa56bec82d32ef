"""What the daemon loads: a library only some configs need is loaded only for them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CONFIG = """\
cluster: dev
platform: local
apps:
  - name: hello
    hosts: [hello.localhost]
    command: python3 -m http.server --bind 127.0.0.1 $PORT
"""
SCHEDULE = """\
    awake_schedule:
      time_zone: Europe/Berlin
      windows: [{days: mon-fri, from: "08:00", to: "20:00"}]
"""


def loaded(config: Path) -> tuple[bool, str]:
    """Whether croniter is in memory after the daemon's imports and its config read,
    and the first app's schedule as read."""
    code = textwrap.dedent(f"""
        import sys
        import wakeproxy.app, wakeproxy.cli
        from wakeproxy.settings.load import load_settings
        settings = load_settings({str(config)!r})
        print("croniter" in sys.modules, settings.apps[0].policy.awake_schedule)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(" ", 1)  # fmt: skip
    return out[0] == "True", out[1].strip()


def test_croniter_is_loaded_only_for_a_config_with_an_awake_schedule(tmp_path: Path) -> None:
    # croniter and dateutil weigh ~1.3 MiB resident: most clusters schedule nothing.
    plain = tmp_path / "plain.yaml"
    plain.write_text(CONFIG)
    assert loaded(plain) == (False, "None")
    scheduled = tmp_path / "scheduled.yaml"
    scheduled.write_text(CONFIG + SCHEDULE)
    has_croniter, schedule = loaded(scheduled)
    assert has_croniter and "0 8 * * mon-fri" in schedule and "43200" in schedule, schedule
