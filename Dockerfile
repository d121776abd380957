# One image for every Earshot stage. Debian sid, because its libwhisper-dev
# package provides whisper.cpp for the `whisper` build tag (Debian 12 has
# none). Build: docker build -t earshot .
FROM debian:sid AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      golang-go ca-certificates gcc g++ pkg-config libc6-dev \
      libopus-dev libopusfile-dev libwhisper-dev \
    && rm -rf /var/lib/apt/lists/*
# Debian ships ggml's CPU backend only as run-time-loaded variants; the Go
# bindings link -lggml-cpu, so give the linker an empty stub to satisfy it.
RUN echo 'void earshot_ggml_cpu_stub(void){}' > /tmp/stub.c \
    && gcc -shared -o /usr/lib/x86_64-linux-gnu/libggml-cpu.so /tmp/stub.c
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -tags whisper -ldflags "-X main.version=${VERSION}" -o /out/earshot ./cmd/earshot

FROM debian:sid
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libopus0 libwhisper1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/earshot --create-home earshot
COPY --from=build /out/earshot /usr/local/bin/earshot
USER earshot
WORKDIR /var/lib/earshot
ENTRYPOINT ["/usr/local/bin/earshot"]
CMD ["run"]
