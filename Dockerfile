# Build the release binary, then run it on a slim image as a non-root user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cronhook

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/cronhook --create-home cronhook
COPY --from=build /src/target/release/cronhook /usr/local/bin/cronhook
USER cronhook
WORKDIR /var/lib/cronhook
# The embedded SQLite store (and the key its secrets are sealed with,
# cronhook.key) live in the working directory; mount a volume there, or set
# DATABASE_URL=postgres://… and CRONHOOK_ENCRYPTION_KEY for production.
# On 0.0.0.0 the service needs a token to start:
#   docker run -p 8080:8080 -e CRONHOOK_ROOT_TOKEN=chk_… cronhook
ENV CRONHOOK_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["cronhook"]
CMD ["serve"]
