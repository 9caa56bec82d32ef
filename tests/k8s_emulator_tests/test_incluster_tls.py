"""In-cluster configuration over TLS: service-account token and CA files, HTTPS, bearer auth."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import load_incluster_config, new_client_from_config

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.tls import generate

from .helpers import expect_status


def configure_in_cluster(configuration: Configuration, **files: Any) -> None:
    """What a pod does at start-up, pointed at the emulator's service-account files."""
    load_incluster_config(client_configuration=configuration,  # type: ignore[no-untyped-call]
                          **files)


async def test_in_cluster_config_talks_https_with_the_token(k8s_emulator_tls: Emulator) -> None:
    files = k8s_emulator_tls.incluster
    assert files is not None
    configuration = Configuration()
    configure_in_cluster(configuration,
                          token_filename=str(files.token_path),
                          cert_filename=str(files.ca_path), environ=files.environ)
    assert configuration.host == f"https://127.0.0.1:{k8s_emulator_tls.port}"
    async with ApiClient(configuration) as api:
        # The token is wakeproxy's ServiceAccount's: its ClusterRole lists Deployments
        # everywhere, and nothing grants it the list of namespaces.
        await client.AppsV1Api(api).list_namespaced_deployment("default")
        with pytest.raises(ApiException) as exc:
            await client.CoreV1Api(api).list_namespace()
        expect_status(exc, 403, "Forbidden")


async def test_kubeconfig_over_tls_verifies_the_ca(k8s_emulator_tls: Emulator) -> None:
    api = await new_client_from_config(config_file=str(k8s_emulator_tls.kubeconfig))
    try:
        listed = await client.CoreV1Api(api).list_namespace()
        assert listed.items
    finally:
        await api.close()


async def test_a_wrong_token_is_401(k8s_emulator_tls: Emulator) -> None:
    files = k8s_emulator_tls.incluster
    assert files is not None
    wrong = files.token_path.parent / "wrong-token"
    wrong.write_text("not-the-token")
    configuration = Configuration()
    configure_in_cluster(configuration, token_filename=str(wrong),
                          cert_filename=str(files.ca_path), environ=files.environ)
    async with ApiClient(configuration) as api:
        with pytest.raises(ApiException) as exc:
            await client.CoreV1Api(api).list_namespace()
        expect_status(exc, 401, "Unauthorized")


async def test_a_client_trusting_another_ca_is_refused(
    k8s_emulator_tls: Emulator, tmp_path: Path
) -> None:
    other = await asyncio.to_thread(generate, tmp_path / "other-ca")
    files = k8s_emulator_tls.incluster
    assert files is not None
    configuration = Configuration()
    configure_in_cluster(configuration,
                          token_filename=str(files.token_path),
                          cert_filename=str(other.ca_cert), environ=files.environ)
    async with ApiClient(configuration) as api:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await client.CoreV1Api(api).list_namespace()
