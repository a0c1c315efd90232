// The layering check (npm run lint; docs/architecture.md, "Layers"). Imports point down:
//   runtime, api → plan → clickhouse, execute → controllers → operator | workers → cli
// Type-only imports count (tsPreCompilationDeps), and no module is part of a cycle.
const IO_LAYERS = '^src/(clickhouse|execute|controllers|operator|workers|cli)/';

/** A rule: modules under `from` import nothing under `to`. */
const forbid = (name, comment, from, to) => ({ name, comment, severity: 'error', from, to });

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    forbid('no-circular', 'A cycle means two modules are one: move what both need into the lower layer.', {}, { circular: true }),
    forbid(
      'runtime-is-the-base',
      'runtime (logging, retry, errors, hashing) serves every layer and imports none.',
      { path: '^src/runtime/' },
      { path: '^src/(api|plan|clickhouse|execute|controllers|operator|workers|cli)/' },
    ),
    forbid('api-below-plan', 'api (the three kinds, their schemas and name rules) is below plan.', { path: '^src/api/' }, { path: '^src/plan/' }),
    forbid('pure-layers-no-io', 'runtime, api and plan are pure: nothing from the I/O layers.', { path: '^src/(runtime|api|plan)/' }, { path: IO_LAYERS }),
    forbid(
      'plan-no-io-modules',
      'plan computes: no file system, network, processes or clients.',
      { path: '^src/plan/' },
      {
        path: '^(node:)?(fs|fs/promises|net|http|https|http2|child_process|dgram|dns|tls|worker_threads)$|(^|/)node_modules/(@clickhouse/client|@kubernetes/client-node|kafkajs|chdb)/',
      },
    ),
    forbid(
      'clickhouse-below-execute',
      'clickhouse (the connection, catalog observation, the embedded server) knows nothing of who runs plans.',
      { path: '^src/clickhouse/' },
      { path: '^src/(execute|controllers|operator|workers|cli)/' },
    ),
    forbid(
      'execute-below-controllers',
      'execute runs plans; controllers, the operator and the workers call it.',
      { path: '^src/execute/' },
      { path: '^src/(controllers|operator|workers|cli)/' },
    ),
    forbid(
      'controllers-below-operator-and-workers',
      'controllers decide per resource; the operator and the CLI drive them.',
      { path: '^src/controllers/' },
      { path: '^src/(operator|workers|cli)/' },
    ),
    forbid(
      'workers-not-controllers-or-operator',
      'an ingest or serve pod carries no controller or operator code.',
      { path: '^src/workers/' },
      { path: '^src/(controllers|operator)/' },
    ),
    forbid('operator-not-workers', 'the operator runs workers as Deployments, never as code.', { path: '^src/operator/' }, { path: '^src/workers/' }),
    forbid(
      'nothing-imports-cli',
      'cli is the top: commands import the layers, nothing imports a command.',
      { path: '^src/', pathNot: '^src/cli/' },
      { path: '^src/cli/' },
    ),
    forbid('src-not-dev-dependencies', 'the shipped code imports only dependencies, not devDependencies.', { path: '^src/' }, { dependencyTypes: ['npm-dev'] }),
    forbid('resolvable', 'an import that resolves to nothing.', { path: '^src/' }, { couldNotResolve: true }),
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
  },
};
