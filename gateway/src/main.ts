/** Entry point: configuration, start, and the signals that stop the gateway. */
import dotenv from 'dotenv';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import { startGateway } from './server.js';

// A .env file in the working directory fills in what the environment does not set.
dotenv.config({ quiet: true });

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const log = createLogger(config.logLevel);
const gateway = await startGateway(config, log);
log.info(
  {
    url: gateway.url,
    bokeh: gateway.upstreams.name,
    prefix: config.bokehPrefix,
    apps: config.apps,
    publicOrigins: config.publicOrigins.map((origin) => origin.origin),
    trustProxy: config.trustProxy,
  },
  'gateway listening',
);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal, openWebSockets: 'closing with 1001', timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    const forced = setTimeout(() => {
      log.error('shutdown took too long, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 2_000);
    forced.unref();
    gateway.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
