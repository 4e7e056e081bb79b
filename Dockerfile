# syntax=docker/dockerfile:1
# Build: a release binary with its migrations embedded. Run: a slim image with only that binary.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so code changes do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin fieldline

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/fieldline fieldline
COPY --from=build /src/target/release/fieldline /usr/local/bin/fieldline
COPY message-templates /app/message-templates
COPY intents /app/intents
WORKDIR /app
USER fieldline
ENV HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json \
    FIELDLINE_DATA_DIR=/var/lib/fieldline/data
EXPOSE 8080
# `serve` applies pending migrations before it listens; /readyz turns 200 once they are current.
CMD ["fieldline", "serve"]
