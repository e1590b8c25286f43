import { describeIssue } from '../config/zod-issue.js';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { WarrenError } from '../errors/warren-error.js';
import { errorBodyMessage, httpCall } from '../net/http-call.js';
import { formatSpiffeId, type SpiffeId } from './spiffe.js';
import type { TrustBundle } from './trust-bundle.js';

/**
 * The audience of the projected token the agent presents to `warren ca`: the
 * CA reviews tokens for this audience only, so a token it sees cannot be
 * replayed against the API server, and an API server token is no use here.
 */
export const CA_TOKEN_AUDIENCE = 'warren-ca';

export class CaRequestError extends WarrenError {
  constructor(
    message: string,
    /** the CA's HTTP status; undefined when it was not reached */
    readonly status: number | undefined,
  ) {
    // 4xx is the CA's considered answer, except 429 (its per-caller limits); everything else may pass.
    super('ERR_CA_REQUEST', message, { retryable: status === undefined || status === 429 || status >= 500 });
  }
}

/** What the data plane needs from the CA: a chain for a CSR. One real implementation; tests can record. */
export interface CaClient {
  requestCertificate(identity: SpiffeId, csrPem: string): Promise<string[]>;
}

const responseSchema = z.object({ certChain: z.array(z.string().min(1).max(16_384)).min(1).max(8) });
const MAX_RESPONSE = 64 * 1024;

/**
 * The node agent's client for `warren ca` (docs/architecture.md §5): HTTPS verified
 * against the trust bundle (so a CA not signed by our root is never sent
 * a token), the service account token read from its file on every call
 * (projected tokens are rotated by the kubelet), bounded time and size.
 */
export function createCaClient(options: { address: string; tokenFile: string; bundle: TrustBundle; timeoutMs?: number }): CaClient {
  const url = new URL('/v1/certificates', options.address);
  return {
    async requestCertificate(identity, csrPem) {
      const roots = options.bundle.pems();
      if (roots.length === 0) throw new CaRequestError('no trust bundle yet (ConfigMap warren-ca-root); cannot verify the CA', undefined);
      let token: string;
      try {
        token = (await readFile(options.tokenFile, 'utf8')).trim();
      } catch (err) {
        throw new CaRequestError(`cannot read the service account token ${options.tokenFile}: ${(err as Error).message}`, undefined);
      }
      const body = JSON.stringify({ csr: csrPem, identity: formatSpiffeId(identity) });
      const timeoutMs = options.timeoutMs ?? 10_000;
      const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
      const answer = await httpCall({ url, method: 'POST', ca: roots, timeoutMs, maxBytes: MAX_RESPONSE, headers, body }).catch((err: Error) => {
        if (err instanceof WarrenError) throw err;
        throw new CaRequestError(`the CA at ${options.address} is unreachable: ${err.message}`, undefined);
      });
      const status = answer.status;
      const text = answer.body.toString('utf8');
      if (status !== 200) throw new CaRequestError(`the CA refused ${formatSpiffeId(identity)} with ${status}: ${errorBodyMessage(text)}`, status);
      let parsed;
      try {
        parsed = responseSchema.safeParse(JSON.parse(text));
      } catch {
        throw new CaRequestError('the CA answered with invalid JSON', status);
      }
      if (!parsed.success) throw new CaRequestError(`the CA's answer is malformed: ${describeIssue(parsed.error)}`, status);
      return parsed.data.certChain;
    },
  };
}
