"""The API client: from a kubeconfig file, or from the pod's service account in a cluster.

Owns building one `ApiClient` with its own configuration (never the library's global
default) and a connection pool large enough for the open watches plus ordinary calls.
Reads exactly the files it is given; the composition root decides which (and reads the
environment for the in-cluster host and port).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_kube_config
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class ClientConfigError(Exception):
    """The kubeconfig or the in-cluster service account cannot be used."""


@dataclass(frozen=True, slots=True)
class InCluster:
    """Where a pod finds the API: the service's host and port, the token and the CA."""

    host: str
    port: str
    token_file: str = f"{SERVICE_ACCOUNT_DIR}/token"
    ca_file: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt"


async def connect(*, kubeconfig: str | None, incluster: InCluster | None,
                  pool_size: int) -> ApiClient:
    """A client from `kubeconfig`, else from `incluster`. Raises ClientConfigError."""
    configuration = Configuration()
    try:
        if kubeconfig is not None:
            # persist_config=False: never write refreshed credentials back to the file.
            await load_kube_config(config_file=kubeconfig, client_configuration=configuration,
                                   persist_config=False)
        elif incluster is not None:
            environ = {"KUBERNETES_SERVICE_HOST": incluster.host,
                       "KUBERNETES_SERVICE_PORT": incluster.port}
            InClusterConfigLoader(token_filename=incluster.token_file,
                                  cert_filename=incluster.ca_file,
                                  environ=environ).load_and_set(configuration)
        else:
            raise ClientConfigError(
                "no kubeconfig given and not running in a cluster "
                "(KUBERNETES_SERVICE_HOST is not set): set kubernetes.kubeconfig")
    except ConfigException as e:
        source = kubeconfig or "the in-cluster service account"
        raise ClientConfigError(f"{source}: {e}") from None
    except OSError as e:
        raise ClientConfigError(f"{kubeconfig}: {e.strerror or e}") from None
    configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration=configuration)
