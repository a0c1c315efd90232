// The `weir token` subcommands' flags; jose and the minting code load only when one runs (see main.ts).
import { Option, type Command } from 'commander';
import { JWT_ALGORITHMS } from '../api/endpoint.js';
import type { TokenFlags } from './token.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerToken(program: Command): void {
  const token = program.command('token').description('Signed endpoint tokens (JWT) for Endpoints with spec.auth.jwt.');
  token
    .command('create')
    .description('Print a signed token for an Endpoint: its scope, the parameters it fixes, its expiry (for local use and tests; products mint their own).')
    .requiredOption('--endpoint <name>', "endpoint the token may call (repeatable; '*': any)", collect)
    .option('--param <name=value>', 'a parameter the token fixes, e.g. tenant=acme (repeatable; a [..] value is a JSON array)', collect)
    .option('--ttl <duration>', 'how long the token is valid: 90s, 15m, 1h, 7d', '1h')
    .option('-f, --filename <path>', "project folder: --issuer, --audience and the HS256 secret default to its Endpoint's spec.auth.jwt and Secret")
    .option('-n, --namespace <ns>', 'namespace for resources that set none (with -f)', 'default')
    .option(
      '--secret-file <file>',
      'the HS256 secret (the jwt Secret\'s key "secret"), or a private key (PKCS#8 PEM or JWK) whose public half is in its jwks.json',
    )
    .option('--issuer <iss>', "iss, as the Endpoint's spec.auth.jwt.issuer")
    .option('--audience <aud>', "aud, as the Endpoint's spec.auth.jwt.audience")
    .option('--sub <sub>', 'who the token is for (the request log records it; weir.dev/rps counts by it)')
    .addOption(new Option('--rps <n>', 'requests per second the token may make (weir.dev/rps)').argParser(Number))
    .option('--kid <kid>', "key id for the header (default: the JWK's kid)")
    .addOption(new Option('--alg <alg>', 'signature algorithm (default: from the key)').choices([...JWT_ALGORITHMS]))
    .action(async (flags: TokenFlags) => {
      const { createToken } = await import('./token.js');
      process.stdout.write(`${await createToken(flags)}\n`);
    });
}
