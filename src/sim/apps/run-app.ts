import { parseArgs } from 'node:util';
import { WarrenError } from '../../errors/warren-error.js';
import { startGrpcEcho } from './grpc-echo.js';
import { startHttpEcho } from './http-echo.js';
import { startTcpEcho } from './tcp-echo.js';

export const APPS = ['http-echo', 'grpc-echo', 'tcp-echo', 'sleep'] as const;

const HELP = `Usage: warren sim app <http-echo|grpc-echo|tcp-echo|sleep> [--port N]

Built-in container stand-ins for simulated pods:
  http-echo   HTTP on --port (default 8080, or $PORT): answers with JSON naming the pod
              ($POD_NAME, $POD_NAMESPACE), the request and the client address;
              /delay/N answers after N s (at most 10), /status/N with code N,
              /flaky/N 503 to the first N requests with one x-request-id;
              a WebSocket gets each message back prefixed with the pod name;
              $ECHO_STATUS sets every other answer's status
  grpc-echo   gRPC over h2c (prior knowledge) on --port (default 9090, or $PORT): service
              echo.Echo, raw-byte messages; Unary answers "<pod>: <message>", Stream
              three of them, Status the gRPC status its message names; others
              UNIMPLEMENTED; answers carry header x-pod
  tcp-echo    TCP echo on --port (default 9000, or $PORT)
  sleep       does nothing until stopped`;

export async function runApp(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    allowPositionals: true,
  });
  const app = positionals[0];
  if (values.help || app === undefined) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  const portText = values.port ?? process.env.PORT;
  const port = portText === undefined ? ({ 'tcp-echo': 9000, 'grpc-echo': 9090 } as Record<string, number>)[app] ?? 8080 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new WarrenError('ERR_USAGE', `--port must be 1-65535, got ${JSON.stringify(portText)}`);
  }
  const stop = new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  if (app === 'http-echo') {
    const status = Number(process.env.ECHO_STATUS ?? '200');
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new WarrenError('ERR_USAGE', `$ECHO_STATUS must be an HTTP status 200-599, got ${JSON.stringify(process.env.ECHO_STATUS)}`);
    const server = startHttpEcho(port, process.env.POD_NAME ?? 'unknown', process.env.POD_NAMESPACE ?? 'default', status);
    await stop;
    server.close();
  } else if (app === 'grpc-echo') {
    const server = startGrpcEcho(port, process.env.POD_NAME ?? 'unknown');
    await stop;
    server.close();
  } else if (app === 'tcp-echo') {
    const server = startTcpEcho(port);
    await stop;
    server.close();
  } else if (app === 'sleep') {
    // A pending promise alone does not keep Node running: without a timer the "container" would exit at once.
    const alive = setInterval(() => undefined, 1 << 30);
    await stop;
    clearInterval(alive);
  } else {
    throw new WarrenError('ERR_USAGE', `unknown app ${JSON.stringify(app)}; known: ${APPS.join(', ')}`);
  }
  return 0;
}
