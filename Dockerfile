# rtmp-relay: one image for both processes (architecture §2).
#   docker run ... rtmp-relay            -> `rtmp-relay relay` (RTMP :1935, HLS :8888, control :9997, metrics :9998)
#   docker run ... rtmp-relay cloud      -> `rtmp-relay cloud` (:8080); set HEALTHCHECK_URL, see below
# Sources run through tsx (a runtime dependency), so there is no build step and no dev dependencies in the image.
#
# Pinned: Node to an exact release on Debian bookworm (the Node the tests run on), FFmpeg to Debian bookworm's
# exact package version (FFmpeg 5.1: the facts in ../shared/reference/ffmpeg.md and the benchmarks hold for it).
# Bumping: Debian's mirrors keep only the current version of a package, so when a bookworm security update
# supersedes the pin this build fails at `apt-get install` (it never silently drifts). Find the current one with
#   docker run --rm node:20.20.2-bookworm-slim sh -c 'apt-get update -qq && apt-cache policy ffmpeg'
# set FFMPEG_VERSION below to its "Candidate", rebuild, and run `npm test` and `npm run bench` against it.
# Bump NODE_VERSION the same way (a node:<version>-bookworm-slim tag), keeping the major at 20.
ARG NODE_VERSION=20.20.2
FROM node:${NODE_VERSION}-bookworm-slim

ARG FFMPEG_VERSION=7:5.1.9-0+deb12u1

# FFmpeg is the media pipeline (and ffprobe comes with it). No recommends: keeps X11/GUI bits out.
RUN apt-get update \
 && apt-get install -y --no-install-recommends "ffmpeg=${FFMPEG_VERSION}" \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so source edits do not invalidate this layer. tsx is in "dependencies", so
# --omit=dev keeps it (bin/rtmp-relay.mjs needs it at run time).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin/ ./bin/
COPY src/ ./src/
# The operator dashboard's page and scripts, served by the cloud at /dashboard.
COPY web/ ./web/

# Non-root: the `node` user (uid 1000) ships with the base image. Nothing under /app needs to be writable;
# tsx caches compiled files under the OS temp dir (/tmp), which is writable.
USER node

# Relay: RTMP, SRT (UDP), HLS origin + /health + WHEP, control API, Prometheus /metrics, WebRTC ICE (UDP). Cloud: 8080.
EXPOSE 1935 8890/udp 8888 9997 9998 8189/udp 8080

# The health check must look at the process this container runs. The default is the relay's HLS origin;
# a container running `cloud` sets HEALTHCHECK_URL=http://127.0.0.1:8080/health. No curl in slim: use node.
ENV HEALTHCHECK_URL=http://127.0.0.1:8888/health
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Node handles SIGTERM itself (src/cli/main.ts): a relay drains (DRAIN_TIMEOUT_SECONDS, 300), then exits 0, so
# give it more than that before SIGKILL (`docker stop -t 330`, compose's stop_grace_period, Kubernetes'
# terminationGracePeriodSeconds). Run with an init (`docker run --init`, compose `init: true`) so PID 1 is tini,
# which forwards signals and reaps any process orphaned by a crash.
ENTRYPOINT ["node", "bin/rtmp-relay.mjs"]
CMD ["relay"]
