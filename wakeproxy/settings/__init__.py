"""The cluster config file → frozen, grouped settings. Reads that one file; nothing else.

Every mistake is collected and reported together, each naming the file, the key path
and what was expected, e.g.::

    config/cluster.yaml: apps[2].idle_after: expected a duration like 30s or 5m, got 'five'

`load` parses the document and hands each section to its module (`proxy`, `apps`,
`kubernetes`, `review`, `savings`); `reader` collects the problems and `values` converts
single values. Import from this package, not from the modules.
"""

from wakeproxy.model.limits import Limits
from wakeproxy.settings.apps import POLICY_FIELDS, LocalApp
from wakeproxy.settings.build_limits import BuildLimits
from wakeproxy.settings.headroom import Headroom
from wakeproxy.settings.kubernetes import KubernetesBuilds, KubernetesSettings
from wakeproxy.settings.load import Settings, load_settings, parse_settings
from wakeproxy.settings.reader import ConfigError
from wakeproxy.settings.review import ReviewApps
from wakeproxy.settings.savings import Savings
from wakeproxy.settings.values import parse_address, parse_duration

__all__ = [
    "POLICY_FIELDS",
    "BuildLimits",
    "ConfigError",
    "Headroom",
    "KubernetesBuilds",
    "KubernetesSettings",
    "Limits",
    "LocalApp",
    "ReviewApps",
    "Savings",
    "Settings",
    "load_settings",
    "parse_address",
    "parse_duration",
    "parse_settings",
]
