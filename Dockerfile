# One image for every Earshot stage. Debian sid, because its libwhisper-dev
# package provides whisper.cpp for the `whisper` build tag (Debian 12 has
# none). Build: docker build -t earshot . (docker-compose.yml builds the
# `runtime` stage). The `runtime` target is the in-process engine's image:
# transcribe.engine: whisper with transcribe.model_path naming a ggml model
# (whisper.cpp's, or `earshot model convert` of a faster-whisper model;
# README "Convert a model").
FROM debian:sid AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      golang-go ca-certificates gcc g++ pkg-config libc6-dev \
      libopus-dev libopusfile-dev libwhisper-dev \
    && rm -rf /var/lib/apt/lists/*
# Debian ships ggml's CPU backend only as run-time-loaded variants; the Go
# bindings link -lggml-cpu, so give the linker an empty stub to satisfy it.
RUN echo 'void earshot_ggml_cpu_stub(void){}' > /tmp/stub.c \
    && gcc -shared -o /usr/lib/x86_64-linux-gnu/libggml-cpu.so /tmp/stub.c
# Debian's Go defaults to GOTOOLCHAIN=local; when its golang-go is older than
# the version go.mod names, let the go command fetch that exact release.
ENV GOTOOLCHAIN=auto
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -tags whisper -ldflags "-X main.version=${VERSION}" -o /out/earshot ./cmd/earshot

FROM debian:sid AS runtime
# A fixed UID, so that operators can give the mounted secret files (mode
# 0600; the KEK loader refuses files others may read) to this user:
# chown 10001:10001 deploy/secrets/*. The data folder exists in the image
# so that a named volume mounted there starts owned by this user.
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libopus0 libwhisper1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 earshot \
    && useradd --system --uid 10001 --gid 10001 --home /var/lib/earshot --create-home earshot \
    && install -d -o earshot -g earshot -m 0700 /var/lib/earshot/data
COPY --from=build /out/earshot /usr/local/bin/earshot
USER 10001:10001
WORKDIR /var/lib/earshot
# 8470: moderator API (earshot serve); 9464: Prometheus /metrics.
EXPOSE 8470 9464
ENTRYPOINT ["/usr/local/bin/earshot"]
CMD ["run"]
