/** The slice of a pino logger the router uses; a no-op one stands in when none is given. */
export interface RouterLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export const silentLogger: RouterLogger = { info() {}, warn() {}, error() {} }
