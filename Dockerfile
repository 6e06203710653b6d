# syntax=docker/dockerfile:1
#
# Image of the inference-operator: the release binary alone on a distroless base, running as
# UID 65532 with no shell, no package manager and nothing writable needed.
#
#   docker build -t inference-operator:0.1.0 .
#   docker run --rm inference-operator:0.1.0 version
#
# Needs BuildKit (the default builder of Docker 23+ and of `docker buildx`) for the cache mounts.
#
# Base image choice: the binary is built for x86_64/aarch64-unknown-linux-gnu and so links glibc
# (and libgcc_s for unwinding tables), which gcr.io/distroless/cc-debian12 provides, at the same
# Debian 12 glibc (2.36) the builder links against. A fully static musl build on
# distroless/static would save about 20 MB of base image, but musl's allocator is markedly
# slower under a multi-threaded tokio runtime, ring's C and assembly parts would need a musl
# cross toolchain in the builder, and the musl target is not installed in the rust image.
# Both bases carry /etc/ssl/certs and tzdata and define the `nonroot` user (65532).

# The toolchain CI builds and tests with (Cargo.toml's rust-version is the minimum; the locked
# dependencies may need newer). Override with --build-arg RUST_VERSION=1 for the latest stable.
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The whole workspace is needed: Cargo.lock covers both members and `--locked` keeps the build
# reproducible (see .dockerignore for what is left out of the context).
COPY . .
# Cache mounts keep the crates.io index/downloads and the target directory across builds; the
# binary is copied out of the cached target/ within the same RUN.
# Size: the release profile in Cargo.toml already strips symbols, uses thin LTO, one codegen
# unit and panic=abort.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --package inference-operator --bin inference-operator \
 && install -D -m 0755 target/release/inference-operator /out/inference-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="inference-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages Elasticsearch inference endpoints from InferenceEndpoint objects" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/inference-operator /inference-operator
# Numeric, so that Kubernetes' runAsNonRoot can verify it without resolving a user name.
USER 65532:65532
# /metrics, /livez, /readyz (--metrics-address, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/inference-operator"]
CMD ["run"]
