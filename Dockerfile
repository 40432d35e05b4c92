# ks-clean as a container image: a static binary on an empty base, run as a
# non-root user. Build:
#
#   docker build -t ks-clean:latest \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse --short HEAD)" .
#
# docs/deploy/ks-clean-job.yaml runs this image in a cluster.

ARG GO_VERSION=1.24

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/ks-clean/ks-clean/internal/cli.version=${VERSION} -X github.com/ks-clean/ks-clean/internal/cli.commit=${COMMIT}" \
      -o /rootfs/ks-clean . \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chmod 1777 /rootfs/tmp

# Nothing but the binary, CA certificates (for chart repositories; the
# cluster's CA comes with the ServiceAccount) and a /tmp. No shell.
FROM scratch
COPY --from=build /rootfs/ /
ENV HOME=/tmp
USER 65532:65532
ENTRYPOINT ["/ks-clean"]
