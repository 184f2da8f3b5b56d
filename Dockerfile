# syntax=docker/dockerfile:1
# The runbook worker image (service `worker` in docker-compose.temporal.yml).
#   docker build -t temporal-runbooks-worker .
# Stage 1 compiles TypeScript to dist/ with the dev dependencies; stage 2 carries production
# dependencies and dist/ only. The worker bundles workflows/ from dist/ when it starts.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
# Only the runtime source trees (test/ and bench/ are not part of the image).
COPY common ./common
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
COPY client ./client
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
# Tools the activities run on the worker itself: nsupdate/dig for RFC 2136 DNS providers.
ARG RUNTIME_APT_PACKAGES="bind9-dnsutils"
RUN if [ -n "$RUNTIME_APT_PACKAGES" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends $RUNTIME_APT_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's non-root user (uid/gid 1000). To drive the local Docker engine through a mounted
# /var/run/docker.sock the process also needs the socket's group: compose adds it with
# `group_add: [DOCKER_GID]` (`docker run --group-add "$(stat -c %g /var/run/docker.sock)"`).
# Whoever can use that socket is root on the host.
RUN mkdir -p /home/node/.ssh && chown node:node /home/node/.ssh && chmod 700 /home/node/.ssh
USER node
CMD ["node", "dist/workers/main.js"]
