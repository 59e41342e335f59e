# shoal container images: the agent (default, last stage) and the synthetic
# target farm of the demo.
#
#   docker build -t shoal .
#   docker build --target farm -t shoal-farm .
#   docker build --build-arg VERSION=v0.1.0 -t shoal:v0.1.0 .
#
# The builder stage compiles static binaries (CGO_ENABLED=0); the runtime
# stages are FROM scratch: the binary, CA certificates, /etc/passwd with the
# non-root user shoal (uid 65532) and, for the agent, a data directory owned
# by that user.
#
# The runtime stages take from the builder stage only /out/ (binaries and an
# empty data directory) and /etc/ssl/certs/ca-certificates.crt, so the stage
# can be swapped for binaries built elsewhere. hack/docker-test.sh (make
# docker) does that without a registry: it replaces the builder stage, from
# its FROM line to the next FROM, with a COPY of host-built binaries and
# builds the other stages unchanged, with the classic builder or BuildKit.
# (With buildx, `--build-context builder=DIR` would do the same; the machine
# this was written on has no buildx, so that path is untested.)

ARG GO_VERSION=1.26

# ---- builder ----------------------------------------------------------------
FROM golang:${GO_VERSION} AS builder
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit for --platform builds; empty (the builder's own) otherwise.
ARG TARGETOS
ARG TARGETARCH
RUN set -eu; \
	mkdir -p /out/data; \
	for cmd in shoal shoal-farm; do \
		CGO_ENABLED=0 GOOS="${TARGETOS}" GOARCH="${TARGETARCH}" \
			go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
			-o "/out/${cmd}" "./cmd/${cmd}"; \
	done

# ---- farm: synthetic scrape targets for the demo (deploy/docker-compose.yml)
FROM scratch AS farm
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY deploy/image/passwd deploy/image/group /etc/
COPY --from=builder /out/shoal-farm /bin/shoal-farm
USER 65532:65532
ENTRYPOINT ["/bin/shoal-farm"]
CMD ["--listen-host=0.0.0.0"]

# ---- shoal: the agent (default target) ---------------------------------------
FROM scratch AS shoal
ARG VERSION=dev
LABEL org.opencontainers.image.title="shoal" \
	org.opencontainers.image.description="Clustered Prometheus scrape agent" \
	org.opencontainers.image.source="https://github.com/shoal-dev/shoal" \
	org.opencontainers.image.version="${VERSION}"
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY deploy/image/passwd deploy/image/group /etc/
COPY deploy/image/shoal.yml /etc/shoal/shoal.yml
COPY --from=builder /out/shoal /bin/shoal
# The write-ahead log; a scratch image cannot mkdir, so the builder makes it.
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532
# 9090: HTTP API, status page, /metrics. 7946: gossip (memberlist), TCP and UDP.
EXPOSE 9090 7946/tcp 7946/udp
VOLUME ["/data"]
ENTRYPOINT ["/bin/shoal"]
CMD ["--config.file=/etc/shoal/shoal.yml", "--storage.path=/data"]
