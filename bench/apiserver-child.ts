/**
 * The API server alone in its own process, so its RSS can be read from
 * /proc: prints one JSON line {port, token, ca} once it listens.
 */
import { startApiServer } from '../src/sim/apiserver/server.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: apiserver-child.js STATE_DIR');
const server = await startApiServer({ dir, listen: [{ address: '127.0.0.1', port: 0 }], advertise: { address: '127.0.0.1', port: 6443 } });
console.log(JSON.stringify({ ready: true, port: server.ports[0], token: server.adminToken, ca: server.caCertPem }));
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
