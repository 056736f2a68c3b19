# python-executor image: a Go build stage and a Debian trixie runtime with
# Python 3.13, the scientific stack from Debian's packages (numpy, pandas,
# scipy, matplotlib, scikit-learn, statsmodels, seaborn, sympy) and
# bubblewrap. Build: docker build -t python-executor .
# (scripts/docker-base.sh makes the base where no registry is reachable.)
# Run (see README "Docker"): docker run -p 8080:8080 python-executor

FROM debian:trixie-slim AS build
# The classic builder keeps this stage as an untagged ~720 MB image; the label
# lets scripts/docker-test.sh (or you) remove it after a build:
#   docker image prune -f --filter label=python-executor.stage=build
LABEL python-executor.stage=build
# EXTRA_CA_CERTS: PEM certificates to trust while building, for networks that
# intercept TLS (scripts/docker-test.sh passes the host's). Build stage only.
ARG EXTRA_CA_CERTS=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/extra.crt && update-ca-certificates; \
    fi
WORKDIR /src
COPY go.mod go.sum ./
COPY scripts/install-go.sh scripts/
RUN scripts/install-go.sh
ENV PATH=/usr/local/go/bin:$PATH CGO_ENABLED=0 GOFLAGS=-trimpath
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/python-executor ./cmd/server

FROM debian:trixie-slim
# The same packages scripts/deps.sh installs on a host, from trixie. No
# manuals, documentation or translations (as Debian's official slim images),
# and no downloaded .deb files: a debootstrapped base keeps them otherwise.
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' \
      > /etc/dpkg/dpkg.cfg.d/slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-numpy python3-pandas python3-scipy \
      python3-matplotlib python3-sklearn python3-statsmodels python3-seaborn python3-sympy bubblewrap tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin executor
COPY --from=build /out/python-executor /usr/local/bin/python-executor
# Non-root: workers then run as this uid too, inside their own user namespace
# when the runtime allows one (see SECURITY.md for the isolation each runtime gives).
USER 10001:10001
ENV PORT=8080
EXPOSE 8080
# tini reaps any orphan that ends up as a child of PID 1, whether or not the
# server is PID 1 (the server itself reaps the workers it starts).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/python-executor"]
