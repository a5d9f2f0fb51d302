# Build: docker build -t social-realtime .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin social-realtime

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /var/lib/social-realtime && chown 65534:65534 /var/lib/social-realtime
COPY --from=build /src/target/release/social-realtime /usr/local/bin/social-realtime
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/social-realtime"]
CMD ["run", "--listen", "0.0.0.0:8080"]
