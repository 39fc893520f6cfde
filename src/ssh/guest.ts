import ssh2, { type Client } from 'ssh2'
import { parsePublicKey } from './keys.ts'
import type { GuestSshAddress } from './types.ts'

export interface GuestLogin {
  address: GuestSshAddress
  username: string
  privateKey: string
  keepaliveIntervalMs: number
  readyTimeoutMs?: number
}

/** Opens the gateway's own SSH connection to a guest's sshd; resolves once authenticated. */
export function connectGuest(login: GuestLogin): Promise<Client> {
  const { address } = login
  const pinned = address.hostKey ? parsePublicKey(address.hostKey).blob : undefined
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client()
    let settled = false
    client.once('ready', () => {
      settled = true
      client.setNoDelay(true) // interactive traffic: no Nagle delay on this hop either
      resolve(client)
    })
    client.on('error', (err) => {
      if (settled) return // reported through 'close' to whoever holds the client
      settled = true
      client.end()
      reject(err)
    })
    client.once('close', () => {
      if (!settled) {
        settled = true
        reject(new Error('guest sshd closed the connection during login'))
      }
    })
    client.connect({
      sock: address.connect(),
      username: login.username,
      privateKey: login.privateKey,
      // Only our key: never fall back to an agent or other methods on the guest.
      agent: undefined,
      tryKeyboard: false,
      keepaliveInterval: login.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      readyTimeout: login.readyTimeoutMs ?? 20_000,
      // A way the node gave us; pinning (when the node knows the key) guarantees it still leads to
      // this workspace's VM and not one that inherited it.
      hostVerifier: pinned ? (key: Buffer) => key.equals(pinned) : undefined,
    })
  })
}
