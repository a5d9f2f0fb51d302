# syntax=docker/dockerfile:1
# The Fluvio image (`infinyon/fluvio`, which holds only `/fluvio-run`) plus the `fluvio` CLI of the same release,
# for the one-shot `fluvio-spu-register` service of docker-compose.yml. The CLI is the release asset
# `fluvio-<arch>-unknown-linux-musl.zip` of github.com/infinyon/fluvio (a static binary).
# Build context: deploy/.
ARG FLUVIO_VERSION=0.18.1

FROM alpine:3.22 AS cli
ARG FLUVIO_VERSION
ARG TARGETARCH
RUN apk add --no-cache curl unzip \
 && case "${TARGETARCH:-amd64}" in \
        amd64) arch=x86_64 ;; \
        arm64) arch=aarch64 ;; \
        *) echo "no Fluvio CLI build for ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && curl -fsSL -o /tmp/fluvio.zip \
        "https://github.com/infinyon/fluvio/releases/download/v${FLUVIO_VERSION}/fluvio-${arch}-unknown-linux-musl.zip" \
 && unzip -q /tmp/fluvio.zip -d /tmp/fluvio \
 && install -m 0755 /tmp/fluvio/fluvio /usr/local/bin/fluvio

FROM infinyon/fluvio:${FLUVIO_VERSION}
COPY --from=cli /usr/local/bin/fluvio /usr/local/bin/fluvio
COPY --chmod=0755 fluvio-spu-register.sh /usr/local/bin/fluvio-spu-register
CMD ["/usr/local/bin/fluvio-spu-register"]
