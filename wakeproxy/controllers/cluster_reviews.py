"""Open review apps read back from their Deployments: they survive a wakeproxy restart.

On Kubernetes there is no state file: the cluster is the record. Every review app the
controllers opened has a Deployment (reserved at `opened`, then deployed over), labelled
with its name and pull request number (`labels_of`), its hosts annotated, and once a
build is deployed, that build's commit. A Deployment is one of ours only when all of
that agrees with its name (`pr-<n>-<app>`); the base app is the one the name was made
from. Deployments being deleted are left out: their pull request was closed already.
Must never: write to the API.
"""

from __future__ import annotations

from wakeproxy.controllers.cluster_builds import PULL_REQUEST_LABEL, REVIEW_LABEL
from wakeproxy.controllers.review import base_of, review_name
from wakeproxy.controllers.state import ReviewRecord
from wakeproxy.platforms.kubernetes.annotations import HOSTS
from wakeproxy.platforms.kubernetes.api import JSON
from wakeproxy.platforms.kubernetes.deploys import APP_LABEL, COMMIT_ANNOTATION, Deploys


def review_record(obj: JSON) -> ReviewRecord | None:
    """The open review app a Deployment of ours stands for; None for any other one."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    name = str(meta.get("name") or "")
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    number, base = str(labels.get(PULL_REQUEST_LABEL) or ""), base_of(name)
    if (base is None or not number.isdigit() or labels.get(REVIEW_LABEL) != name
            or labels.get(APP_LABEL) != name or review_name(int(number), base) != name):
        return None
    host = str(notes.get(HOSTS) or "").split(",")[0].strip()
    return ReviewRecord(name=name, number=int(number), base=base,
                        head_sha=str(notes.get(COMMIT_ANNOTATION) or ""), host=host)


async def found_reviews(deploys: Deploys) -> list[ReviewRecord]:
    """The review apps whose Deployments are in the builds namespace, by name.

    Raises ApiError.
    """
    records = [review_record(obj) for obj in await deploys.found(REVIEW_LABEL)]
    return sorted((r for r in records if r is not None), key=lambda r: r.name)
