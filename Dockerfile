# wakeproxy's image: `docker build -t wakeproxy .`, then see k8s/ to run it on a cluster.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY wakeproxy ./wakeproxy
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# git: the builds resolve a branch or tag to its commit (`git ls-remote`) before the build Job.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The root filesystem is read-only in the cluster: no bytecode files written at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
RUN python -m compileall -q /usr/local/lib/python3.11/site-packages
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["wakeproxy"]
CMD ["serve", "--config", "/etc/wakeproxy/cluster.yaml"]
