# syntax=docker/dockerfile:1
#
# One image for every node role of the locker platform. The role is chosen at
# run time by SERVICES (see config/index.ts and docker-compose.yml). Every
# setting is an environment variable, documented in .env.example:
#   docker run -p 3000:3000 -p 1883:1883 -v lockers-data:/data --env-file .env locker-platform
# (docker run takes .env values literally: no quotes there, unlike compose)
# runs the embedded mode (all services, NeDB files in /data, embedded MQTT broker);
# NODE_ENV=production below makes it refuse to start until the secrets are set.
#
# TypeScript runs through tsx (a runtime dependency): there is no compile step.

ARG NODE_IMAGE=node:22-bookworm-slim

# ---- deps: production node_modules only -------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev leaves out jest, typescript, … and the `node` devDependency (the
# npm package that provides a Node 22 binary on development machines); the
# image already has Node 22. @node-rs/argon2 and esbuild (under tsx) come as
# prebuilt per-platform optional packages, so no compiler is needed.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund

# ---- runtime -----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to node (graceful broker.stop()) and reaps
# zombies. `-s` (subreaper) keeps it quiet when docker's own init
# (`docker run --init`, compose `init: true`) is PID 1 instead.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# Defaults of the image (config/index.ts's own defaults otherwise; .env.example lists all).
ENV NODE_ENV=production \
    PORT=3000 \
    MQTT_PORT=1883 \
    HEALTH_PORT=3001 \
    DATA_DIR=/data

WORKDIR /app
# Code and dependencies stay owned by root (read-only for the app); only
# /data is writable by the `node` user. tsx keeps its cache under /tmp.
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN mkdir -p /data && chown node:node /data

USER node
VOLUME ["/data"]

# 3000: HTTP API (gateway nodes); 1883: embedded MQTT broker (embedded mode).
# Nodes without the gateway answer /health and /ready on HEALTH_PORT (3001).
EXPOSE 3000 1883

# Gateway nodes: http://127.0.0.1:$PORT/api/v1/ready; other nodes:
# http://127.0.0.1:$HEALTH_PORT/ready (see deploy/healthcheck.js).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "deploy/healthcheck.js"]

ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
# The node that holds the catalog adds NODE_OPTIONS=--no-allocation-site-pretenuring (docker-compose.yml,
# README "Runtime settings").
CMD ["node", "--import", "tsx", "server.ts"]
