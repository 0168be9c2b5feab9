# syntax=docker/dockerfile:1
#
# The wsgate container image: a `dist` build (release with LTO, see Cargo.toml) in the official Rust image, copied into distroless "cc"
# (glibc, CA certificates, no shell, no package manager), running as the unprivileged user 65532.
#
#   docker build -t wsgate/wsgate:0.1.0 .                          # or: podman build -t … .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/examples/quickstart:/manifests:ro" wsgate/wsgate:0.1.0 run --manifests /manifests
#
# In a cluster the Helm chart (charts/wsgate) runs it with `run` and the flags from its values; set
# image.repository / image.tag (or image.digest) to where you pushed it.

# Keep in step with the toolchain CI uses (edition 2024 needs 1.85 or later).
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer, so a source change does not download them again. `cargo fetch`
# needs a target to read the manifest: empty stand-ins, replaced by the real sources below.
COPY Cargo.toml Cargo.lock ./
# The other workspace members (the benchmark, the e2e test API server) must be present for cargo to read
# the workspace; only wsgate is built.
COPY bench ./bench
COPY tests/e2e/apiserver ./tests/e2e/apiserver
RUN mkdir src && touch src/lib.rs && echo 'fn main() {}' > src/main.rs && cargo fetch --locked
COPY src ./src
COPY examples ./examples
RUN cargo build --profile dist --locked --offline --bin wsgate && install -m 0755 target/dist/wsgate /wsgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /wsgate /wsgate
# nonroot is 65532:65532 already; said again so the image does not depend on the tag's default.
USER 65532:65532
# 8080: HTTP and WebSocket traffic. 9090: admin (/healthz, /readyz, /metrics, /debug/routes).
EXPOSE 8080 9090
ENTRYPOINT ["/wsgate"]
CMD ["run"]
