import { connectFromNetns } from '../tunnel/netns-connect.js';
import { httpCall, httpUrl, type HttpAnswer, type HttpCallOptions } from './http-call.js';

export type NetnsHttpResponse = HttpAnswer;

/**
 * One HTTP request (GET unless `method` says otherwise) made by this process from inside a netns (a pod's or a node's):
 * how the operator commands reach a simulator node's agent, and how kubelet
 * probes, the demo's client and the tests reach addresses that exist only in
 * the simulator's namespaces. Answers past `maxBytes` (16 MiB) are refused.
 */
export async function httpGetInNetns(options: { netns: string; host: string; port: number; path?: string; method?: HttpCallOptions['method']; headers?: Record<string, string>; timeoutMs?: number; maxBytes?: number }): Promise<NetnsHttpResponse> {
  const timeoutMs = options.timeoutMs ?? 3000;
  const socket = await connectFromNetns({ netns: `/var/run/netns/${options.netns}`, host: options.host, port: options.port, mark: 0, timeoutMs });
  return httpCall({ url: httpUrl(options.host, options.port, options.path ?? '/'), socket, timeoutMs, maxBytes: options.maxBytes ?? 16 * 1024 * 1024, ...(options.method ? { method: options.method } : {}), ...(options.headers ? { headers: options.headers } : {}) });
}
