/**
 * The signals that ask the server to shut down, per platform.
 *
 * @module
 */

/** Calls `handler` with the signal's name on SIGINT or SIGTERM (SIGBREAK on Windows); returns an unsubscribe. */
export function onShutdownSignal(handler: (signal: Deno.Signal) => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
  const listeners = signals.map((sig) => {
    const listener = () => handler(sig);
    Deno.addSignalListener(sig, listener);
    return [sig, listener] as const;
  });
  return () => {
    for (const [sig, listener] of listeners) Deno.removeSignalListener(sig, listener);
  };
}
