/**
 * The WebSocket close codes the gateway uses, in one place: the ones it sends of its own, chosen
 * from RFC 6455 section 7.4 and the IANA registry, and the ones it reports.
 */
export const CLOSE = {
  /** Gateway shutting down, or the browser went silent: reconnect later. */
  goingAway: 1001,
  /** A frame breaks RFC 6455 (unmasked from a browser, reserved bits, unknown opcode...). */
  protocolError: 1002,
  /** Never sent: what a side that dropped without a close frame is reported as (RFC 6455 7.1.5). */
  abnormal: 1006,
  /** A message over WS_MAX_MESSAGE_BYTES. */
  tooBig: 1009,
  /** Bokeh's side dropped without a close frame (restart, crash, network). */
  bokehLost: 1014,
} as const;
