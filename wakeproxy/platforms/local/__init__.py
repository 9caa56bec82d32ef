"""The embedded default platform: apps are process groups on this host.

Modules: `platform` (LocalPlatform, the Platform the control plane drives), `process`
(one app's process group and output), `net` (free ports, readiness probes), `watchdog`
(kills our groups if wakeproxy dies without stopping them).
"""

from wakeproxy.platforms.local.platform import LocalPlatform

__all__ = ["LocalPlatform"]
