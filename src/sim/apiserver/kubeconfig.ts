/** A kubeconfig for one cluster, user and context, as kubeadm writes admin.conf. */
export function kubeconfig(server: string, caCertPem: string, token: string, name = 'warren-sim'): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster: { server, 'certificate-authority-data': Buffer.from(caCertPem).toString('base64') } }],
      users: [{ name: `${name}-admin`, user: { token } }],
      contexts: [{ name, context: { cluster: name, user: `${name}-admin`, namespace: 'default' } }],
      'current-context': name,
      preferences: {},
    },
    null,
    2,
  );
}
