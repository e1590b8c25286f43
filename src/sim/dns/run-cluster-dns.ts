import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { startDnsServer } from './dns-server.js';
import { watchClusterRecords } from './records-from-api.js';

/** `warren sim dns`: cluster DNS from the API server's Services and EndpointSlices until SIGTERM. */
export async function runClusterDns(kubeconfigPath: string, address: string, port: number): Promise<number> {
  const log = pino({ base: { component: 'warren-sim-dns' } });
  const logFn = (msg: string, fields: Record<string, unknown>): void => log.info(fields, msg);
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const records = watchClusterRecords(kc, { log: logFn });
  const server = await startDnsServer({ address, port, lookup: (name, type) => records.lookup(name, type), log: logFn });
  log.info({ address, port: server.port }, 'cluster DNS serving');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await server.close();
  await records.stop();
  return 0;
}
