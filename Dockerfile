# rtmp-relay: one image for both processes (architecture §2).
#   docker run ... rtmp-relay            -> `rtmp-relay relay` (RTMP :1935, HLS :8888, control :9997, metrics :9998)
#   docker run ... rtmp-relay cloud      -> `rtmp-relay cloud` (:8080); set HEALTHCHECK_URL, see below
# Sources run through tsx (a runtime dependency), so there is no build step and no dev dependencies in the image.
FROM node:20-bookworm-slim

# FFmpeg is the media pipeline (and ffprobe comes with it). No recommends: keeps X11/GUI bits out.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
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

# Non-root: the `node` user (uid 1000) ships with the base image. Nothing under /app needs to be writable;
# tsx caches compiled files under the OS temp dir (/tmp), which is writable.
USER node

# Relay: RTMP, HLS origin + /health, control API, Prometheus /metrics. Cloud: 8080.
EXPOSE 1935 8888 9997 9998 8080

# The health check must look at the process this container runs. The default is the relay's HLS origin;
# a container running `cloud` sets HEALTHCHECK_URL=http://127.0.0.1:8080/health. No curl in slim: use node.
ENV HEALTHCHECK_URL=http://127.0.0.1:8888/health
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Node handles SIGTERM itself (src/cli/main.ts closes the relay/cloud). Run with `docker run --init` (or an
# init in the orchestrator) so FFmpeg children orphaned by a crash are reaped.
ENTRYPOINT ["node", "bin/rtmp-relay.mjs"]
CMD ["relay"]
