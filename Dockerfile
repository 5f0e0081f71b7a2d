# A StreamHouse agent image: build the release binaries, then run them on
# a slim Debian as an unprivileged user. Build with
#   docker build --build-arg STREAMHOUSE_COMMIT=$(git rev-parse --short=12 HEAD) -t streamhouse .
# and see deploy/docker/compose.yaml for a local cluster with PostgreSQL
# and an S3 server. docs/OPERATIONS.md covers running it.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# No .git in the build context: the commit comes in as an argument.
ARG STREAMHOUSE_COMMIT=unknown
ENV STREAMHOUSE_COMMIT=${STREAMHOUSE_COMMIT}
RUN scripts/build-release.sh /out

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/streamhouse --create-home streamhouse
COPY --from=build /out/streamhouse-agent /out/streamctl /usr/local/bin/
USER streamhouse
WORKDIR /var/lib/streamhouse
# Shard N listens on 9092 + N; the admin port serves /health, /ready and
# /metrics. Advertise what clients reach (STREAMHOUSE_ADVERTISE) when the
# ports are mapped.
ENV STREAMHOUSE_LISTEN=0.0.0.0:9092 \
    STREAMHOUSE_ADMIN_LISTEN=0.0.0.0:9600 \
    STREAMHOUSE_DATA_DIR=/var/lib/streamhouse
EXPOSE 9092-9099 9600
VOLUME /var/lib/streamhouse
# The agent ships what it holds on SIGTERM within --shutdown-grace-ms; give
# `docker stop` at least that long (-t).
STOPSIGNAL SIGTERM
ENTRYPOINT ["streamhouse-agent"]
