/**
 * What points unmodified SDKs inside a VM at the managed AI proxy on the VM bridge: their own
 * base-URL variables, and placeholder keys (SDKs refuse to start without one; the proxy replaces
 * them, so no real key ever enters the VM). Shared by the boot env the node injects and by the
 * in-VM `rig proxy on`, so the two never disagree.
 */
export const BRIDGE_URL = 'http://172.16.0.1:9090'
export const PLACEHOLDER_KEY = 'managed-by-rigbox'

export const MANAGED_AI_ENV: Readonly<Record<string, string>> = {
  OPENAI_BASE_URL: `${BRIDGE_URL}/v1`,
  OPENAI_API_KEY: PLACEHOLDER_KEY,
  OPENROUTER_BASE_URL: `${BRIDGE_URL}/v1`,
  OPENROUTER_API_KEY: PLACEHOLDER_KEY,
  // The Anthropic SDK appends /v1/messages itself.
  ANTHROPIC_BASE_URL: BRIDGE_URL,
  ANTHROPIC_API_KEY: PLACEHOLDER_KEY,
}
