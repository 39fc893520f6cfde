export { createEgressProxy } from './proxy.ts'
export type { EgressLogger, EgressProxy, EgressProxyOptions, EgressStats } from './proxy.ts'
export { decide, decideByName, validatePolicy, MAX_ENTRIES, MAX_ENTRY_LENGTH } from './policy.ts'
export type { DecideOptions, EgressDecision, EgressPolicy, EgressTarget } from './policy.ts'
