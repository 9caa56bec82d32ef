"""The `kubernetes.headroom:` section → Headroom: capacity held for wakes by placeholder pods.

Two ways to size it, never both: from the apps (`apps: N`, the default N=2: room for the
N largest sleeping apps' pods) or fixed totals (`cpu:` and/or `memory:`, split into
`pods:` equal placeholders). `enabled: false` turns it off (the placeholders are removed).
Owns Headroom and its defaults; never talks to a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from wakeproxy.model.quantity import CPU, MEMORY, cpu_millis, memory_bytes
from wakeproxy.settings.reader import Reader
from wakeproxy.settings.values import boolean, dns_subdomain, nonblank, positive_int

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
PRIORITY_CLASS = "wakeproxy-headroom"  # k8s/priorityclass.yaml
KEYS = {"enabled", "apps", "cpu", "memory", "pods", "image", "priority_class"}


@dataclass(frozen=True, slots=True)
class Headroom:
    enabled: bool = True
    # Room for the pods of this many sleeping apps, the largest first (by CPU, then memory
    # requests); each app's pods as many as it wakes with. Unused with fixed totals.
    apps: int = 2
    # Fixed totals instead (None: sized from the apps): millicores and bytes, held by
    # `pods` placeholders of equal size.
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    pods: int = 1
    image: str = PAUSE_IMAGE
    priority_class: str = PRIORITY_CLASS

    @property
    def fixed(self) -> bool:
        return self.cpu_millis is not None or self.memory_bytes is not None


def read_headroom(r: Reader, raw: object) -> Headroom:
    path = "kubernetes.headroom"
    m = r.mapping(raw, path)
    d = Headroom()
    r.unknown_keys(m, KEYS, path)
    p = path + "."
    cpu = r.get(m, "cpu", p, cpu_millis, CPU, None)
    memory = r.get(m, "memory", p, memory_bytes, MEMORY, None)
    if cpu == 0 and not memory:
        r.fail(p + "cpu", "a quantity above zero (or memory above zero)", m.get("cpu"))
    if memory == 0 and not cpu:
        r.fail(p + "memory", "a quantity above zero (or cpu above zero)", m.get("memory"))
    fixed = cpu is not None or memory is not None
    if fixed and m.get("apps") is not None:
        r.fail(p + "apps", "no apps: with fixed cpu/memory totals (one or the other)",
               m["apps"])
    if not fixed and m.get("pods") is not None:
        r.fail(p + "pods", "no pods without cpu or memory (sized from the apps, each app's "
               "pods are counted)", m["pods"])
    return Headroom(
        enabled=r.get(m, "enabled", p, boolean, "true or false", d.enabled),
        apps=r.get(m, "apps", p, positive_int, "a whole number of apps above 0", d.apps),
        cpu_millis=cpu,
        memory_bytes=memory,
        pods=r.get(m, "pods", p, positive_int, "a whole number of pods above 0", d.pods),
        image=r.get(m, "image", p, nonblank, "an image reference like " + PAUSE_IMAGE,
                    d.image),
        priority_class=r.get(m, "priority_class", p, dns_subdomain,
                             "a PriorityClass name like " + PRIORITY_CLASS, d.priority_class),
    )
