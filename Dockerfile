# syntax=docker/dockerfile:1
# The `social-realtime` binary (default features, so with the Fluvio client) on a slim Debian, as a non-root user.
#   docker build -t social-realtime .
#   docker run --rm -p 8080:8080 social-realtime run --demo
# One image serves every role; the command picks it: `run`, `pipeline`, `delivery`, `generate`, `token`.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the build directory between builds (BuildKit); the binary is copied out
# of the cached target directory because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin social-realtime \
 && install -D -m 0755 target/release/social-realtime /out/social-realtime

FROM debian:bookworm-slim
# ca-certificates for TLS endpoints, curl for container healthchecks (GET /readyz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 social \
 && useradd --uid 10001 --gid social --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin social \
 && mkdir -p /var/lib/social-realtime \
 && chown social:social /var/lib/social-realtime
COPY --from=build /out/social-realtime /usr/local/bin/social-realtime
USER 10001:10001
WORKDIR /var/lib/social-realtime
# Every role listens on all interfaces of the container (the binary's own default is loopback).
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/social-realtime"]
CMD ["run"]
