import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The node agent's own health, next to Istio's traffic metrics on :15020. */
export function agentMetrics(registry: Registry, enrolledPods: () => number) {
  new Gauge({
    name: 'warren_enrolled_pods',
    help: 'Pods of this node whose traffic the agent captures',
    registers: [registry],
    collect() {
      this.set(enrolledPods());
    },
  });
  return {
    ruleErrors: new Counter({ name: 'warren_rule_apply_errors_total', help: 'Failed netfilter/routing changes, by operation', labelNames: ['operation'], registers: [registry] }),
    // Steady state is flat: a rise without pods coming or going is rule churn (README "Reliability", scenario 4).
    ruleApplies: new Counter({ name: 'warren_rule_applies_total', help: 'Netfilter/routing changes written, by operation', labelNames: ['operation'], registers: [registry] }),
    policyDenials: new Counter({ name: 'warren_policy_denials_total', help: 'Inbound connections denied by AuthorizationPolicy or PeerAuthentication', registers: [registry] }),
    policyDryRun: new Counter({
      name: 'warren_policy_dry_run_decisions_total',
      help: 'Authorization decisions (new inbound connections, and re-checks of live ones on a policy change) an istio.io/dry-run AuthorizationPolicy applies to, by the decision were the dry-run policies enforced',
      labelNames: ['decision'],
      registers: [registry],
    }),
    hboneRefused: new Counter({ name: 'warren_hbone_refused_total', help: 'HBONE connections or streams refused or reset because a peer met a bound (hbone-limits.ts), by reason', labelNames: ['reason'], registers: [registry] }),
    loopRefused: new Counter({ name: 'warren_agent_loop_refused_total', help: "Connections refused because their destination was the agent's own listener in the pod, by path", labelNames: ['path'], registers: [registry] }),
    // CNI ADD holds up pod start: buckets from 5 ms (an existing certificate) to 5 s (the plugin's timeout).
    cniAdd: new Histogram({
      name: 'warren_cni_add_duration_seconds',
      help: 'Time to answer the CNI plugin ADD, by result',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}
