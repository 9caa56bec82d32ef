"""`wakeproxy delete` on Kubernetes: an app of the config file is refused (it would come
back at the next restart), naming the file; a review app's objects are deleted."""

from __future__ import annotations

import pytest

from tests.controllers_k8s.layout import LEASE_NS
from tests.controllers_k8s.test_build_resume import opened
from tests.controllers_k8s.test_review_apps import deployment
from tests.controllers_k8s.test_review_restart import SECRET
from tests.e2e_k8s.cluster import until
from tests.k8s_emulator import Emulator
from wakeproxy.controllers.cluster import KubernetesControllers
from wakeproxy.controllers.errors import DeclaredInConfig
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.settings import KubernetesBuilds, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings


async def test_only_apps_made_at_run_time_are_deleted(api: Api, k8s_emulator: Emulator) -> None:
    shop = LocalApp(policy=AppPolicy(name="shop", hosts=("shop.localhost",)), command="",
                    repo="https://git.example/shop.git", github_repo="acme/shop")
    c = KubernetesControllers(
        apps=[shop], review=ReviewSettings(domain="review.localhost", webhook_secret=SECRET),
        settings=KubernetesBuilds(builder_command=("sh", "-c", "exit 1")),
        api=lambda: api, lease_namespace=LEASE_NS, lease_name="wakeproxy",
        config_file="/etc/wakeproxy/cluster.yaml")
    await c.start()
    try:
        await until(lambda: deployment(k8s_emulator, "shop") is not None, 10)
        with pytest.raises(DeclaredInConfig, match=r"shop is declared in "
                                                   r"/etc/wakeproxy/cluster\.yaml: remove it"):
            await c.delete("shop")
        assert deployment(k8s_emulator, "shop") is not None

        await opened(c)
        await until(lambda: deployment(k8s_emulator, "pr-7-shop") is not None, 10)
        await c.delete("pr-7-shop")
        assert deployment(k8s_emulator, "pr-7-shop") is None
    finally:
        await c.close()
