// TradeNote's backend for the journal tests: Parse Server 7 mounted at /parse on express,
// the way TradeNote's own index.mjs mounts it (APP_ID / MASTER_KEY, no client class creation,
// master key only from loopback). Configured by environment; prints "ready" when serving.
'use strict';

// no ./logs files next to the launcher: read when parse-server is first required
process.env.PARSE_SERVER_LOGS_FOLDER = process.env.PARSE_SERVER_LOGS_FOLDER || 'null';

const express = require('express');
const { ParseServer } = require('parse-server');

function env(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) {
      console.error(`missing environment variable ${name}`);
      process.exit(2);
    }
    return fallback;
  }
  return value;
}

async function main() {
  const port = Number(env('PARSE_PORT'));
  const host = env('PARSE_HOST', '127.0.0.1');
  const serverURL = `http://${host}:${port}/parse`;
  const parse = new ParseServer({
    databaseURI: env('DATABASE_URI'),
    appId: env('APP_ID'),
    masterKey: env('MASTER_KEY'),
    masterKeyIps: ['127.0.0.1', '::1'],
    serverURL,
    allowClientClassCreation: false,
    enforcePrivateUsers: true,
    silent: true,
    logLevel: 'error',
    logsFolder: null, // no ./logs files next to the launcher
    // parse-server 7.2 on Node >= 20.19 dies in start() without this (parse-server#9517).
    push: { queueOptions: { disablePushWorker: true } },
  });
  await parse.start();
  const app = express();
  app.use('/parse', parse.app);
  const server = app.listen(port, host, () => console.log(`ready ${serverURL}`));
  const stop = () => {
    server.close(() => {
      Promise.resolve(parse.handleShutdown && parse.handleShutdown()).finally(() => process.exit(0));
    });
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`parse-server failed: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
