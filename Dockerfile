# syntax=docker/dockerfile:1
# Build the release binary, then run it on a slim image as a non-root user.
#   docker build -t cronhook .        (or: buildah build -t cronhook .)
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target/ are cache mounts: a rebuild after a change to
# the sources compiles the crate, not its ~400 dependencies again.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cronhook \
    && cp target/release/cronhook /usr/local/bin/cronhook

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/cronhook --create-home cronhook
COPY --from=build /usr/local/bin/cronhook /usr/local/bin/cronhook
USER cronhook
WORKDIR /var/lib/cronhook
# The embedded SQLite store (and the key its secrets are sealed with,
# cronhook.key) live here: keep them on a volume. For production set
# DATABASE_URL=postgres://… and CRONHOOK_ENCRYPTION_KEY (deploy/compose.yaml).
VOLUME /var/lib/cronhook
# On 0.0.0.0 the service needs a token to start:
#   docker run -p 8080:8080 -e CRONHOOK_ROOT_TOKEN=chk_… cronhook
ENV CRONHOOK_LISTEN=0.0.0.0:8080
EXPOSE 8080
# `cronhook healthcheck` asks /readyz (the store answering); the image has
# no curl.
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["cronhook", "healthcheck"]
ENTRYPOINT ["cronhook"]
CMD ["serve"]
