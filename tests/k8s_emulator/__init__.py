"""A Kubernetes API emulator for tests: the real wire protocol, served by aiohttp.

Data flow:

    client (kubernetes_asyncio, via kubeconfig or in-cluster config)
      → server.Emulator._serve: authenticate, route (routing), record (recorder), faults
      → handlers / scale / logs / watch
      → store (prepare: defaults + rules + schema validation; one global resourceVersion)
      → history (per-type bounded event log) → watch streams and controllers
    controllers (controller.Controller subclasses, subscribed to histories):
      deployments → pods; jobs → pods; gc → dependents and namespaces;
      kubelet → real local processes (pod_runner, processes, probes, logs);
      endpointslices → EndpointSlices for pods once they have an address and port.

Tests use `fixtures.py`; everything else is the emulator's inside.
"""

from .config import EmulatorConfig
from .faults import Faults, Rule
from .kubeconfig import InClusterFiles
from .recorder import RecordedRequest, Recorder
from .server import Emulator

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "InClusterFiles",
    "RecordedRequest",
    "Recorder",
    "Rule",
]
