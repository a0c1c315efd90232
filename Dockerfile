# One image for the operator, the ingestion workers and the endpoint servers: the subcommand
# chooses (weir operator | weir ingest | weir serve). Non-root, nothing written outside /tmp, so
# it runs with readOnlyRootFilesystem; tini (PID 1) forwards SIGTERM so pods stop gracefully.
# No Docker on weir's CI machine: scripts/kind-up.sh builds it where Docker is.

# Build: dev dependencies, the TypeScript compiler.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only. --omit=optional drops chdb's native library (~400 MB): the embedded
# ClickHouse is for `weir dev` and `weir clickhouse` on a laptop, never loaded by operator/ingest/serve.
FROM node:20-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
ENV NODE_ENV=production HOME=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["operator"]
