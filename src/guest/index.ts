// Host-side client of the guest agent (see agent/README.md for the protocol).
export { GuestChannel } from './channel.ts'
export type { ConnectOptions, GuestChannelOptions, WriteFileOptions } from './channel.ts'
export {
  GuestError,
  GuestProtocolError,
  GuestTimeoutError,
  GuestUnavailableError,
} from './errors.ts'
export type { ExecOptions, ExecResult, ExecSpec } from './exec.ts'
/** The exec limits the API, this client and the agent share (agent/protocol.ts). */
export { commandProblem, ENV_KEY_RE, envProblem, EXEC_LIMITS } from '../../agent/protocol.ts'
export { PtyHandle } from './pty.ts'
export type { PtySpec } from './pty.ts'
export type {
  ConfigResult,
  DirEntry,
  GuestConfig,
  GuestHealth,
  GuestMetrics,
  ListeningPort,
  LogLine,
  LogsPage,
  PtyExit,
} from './types.ts'
