"""The Kubernetes platform: apps are annotated Deployments; the only `kubernetes_asyncio` user.

Data flow::

    API --list+watch--> Watcher(deployments), Watcher(endpointslices) --caches-->
        ClusterView --AppsChanged / EndpointsChanged--> lifecycle (board + routes)
    lifecycle --wake/sleep--> KubernetesPlatform --Scaler (scale subresource)--> API
    KubernetesPlatform --direct probes--> pod addresses (faster than slice readiness)
    LeaseElector <--Lease--> API: leader() gates the sweeper
    ActivitySync --one Lease per replica per interval--> API
        --Watcher(leases)--> ActivitySync (every replica) --> PeerActivity, Drains
    leader's sleep: propose in its Lease --> peers hold the app (Drains), answer "done"
        --> leader scales to zero (two-phase: no request cut off on a peer)

Modules: `client` (kubeconfig or in-cluster), `api` (calls, timeouts, typed `errors`),
`backoff`, `watcher` (list/watch/410/relist), `annotations` (Deployment → AppSpec),
`catalog` (host conflicts), `endpoints` (slices → addresses), `view` (derived state and
events), `scaler` (conditional scale writes), `elector` (Lease), `activity` (peer
activity records), `drains` (a peer's sleep proposal, this replica's side), `platform`
(the Platform the control plane drives); for the controllers: `builds`, `build_history`,
`deploys`, and `delivery_log` (recent webhook delivery ids shared through a Lease).
"""

from wakeproxy.platforms.kubernetes.client import ClientConfigError, InCluster
from wakeproxy.platforms.kubernetes.platform import KubernetesPlatform

__all__ = ["ClientConfigError", "InCluster", "KubernetesPlatform"]
