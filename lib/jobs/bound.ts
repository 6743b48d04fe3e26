/**
 * Connection-bound jobs: a command on a channel of this connection, its
 * output kept here. Made three ways: a command ssh_execute handed over
 * because a background child kept its output open, a job on a server with
 * no POSIX shell (Windows: the command goes to the server's shell as it is),
 * and any job where detached jobs are switched off.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { KeptOutput, OutputStore } from "../output_store.ts";
import { signalChannel } from "../ssh2/mod.ts";
import type { SshConnection } from "../ssh/connection.ts";
import { type BackgroundChannel, execCommand, type ExecResult } from "../ssh/exec.ts";
import type { RemoteInfo } from "../ssh/remote.ts";
import { SshMcpError } from "../errors.ts";
import { type BoundControl, BoundJob } from "./job.ts";

/** What every bound job is made of. */
export interface BoundParts {
  id: string;
  command: string;
  kept: KeptOutput;
  store: OutputStore;
  connection: SshConnection;
}

/** The job that goes on with the channel of an ssh_execute a background child kept open. */
export function handedOver(parts: BoundParts, result: ExecResult, channel: BackgroundChannel): BoundJob {
  const exit = { code: result.exitCode, signal: result.signal };
  return new BoundJob({
    ...parts,
    note: "The command exited; a background child still holds its output, kept here until the connection ends",
    endsWith: "close",
    control: fromBackground(channel, () => exit),
  });
}

/**
 * Starts a connection-bound job. With a POSIX shell the command runs as
 * ssh_execute runs it (its process group can be signalled); on Windows it
 * goes to the server's shell as it is, and only closing the channel ends it.
 */
export async function startBound(
  parts: BoundParts,
  o: { remote: RemoteInfo; cwd?: string; env?: Record<string, string>; maxTimeoutMs: number; why: string },
): Promise<BoundJob> {
  const note = `Connection-bound (${o.why}): it ends with the connection or at max_timeout ` +
    `(${Math.round(o.maxTimeoutMs / 1000)} s), and its output is kept here`;
  if (o.remote.exec === "windows") {
    const opened = await parts.connection.exec(parts.command);
    opened.channel.on("data", (chunk: Buffer) => parts.kept.push("stdout", chunk));
    opened.channel.stderr.on("data", (chunk: Buffer) => parts.kept.push("stderr", chunk));
    opened.channel.eof();
    return new BoundJob({
      ...parts,
      note,
      endsWith: "exit",
      control: {
        closed: opened.closed,
        exit: () => (opened.status.code === null && opened.status.signal === null ? null : { ...opened.status }),
        signal: (name) => {
          signalChannel(opened.channel, name); // Windows' OpenSSH ignores signals; closing is what ends it
          return Promise.resolve(false);
        },
        kill: () => {
          opened.channel.close();
          return Promise.resolve({ confirmed: false, note: "the channel was closed; Windows takes no signals" });
        },
        close: () => opened.channel.close(),
      },
    });
  }
  let onChannel!: (c: BackgroundChannel) => void;
  const opened = new Promise<BackgroundChannel>((resolve) => (onChannel = resolve));
  let result: ExecResult | null = null;
  const running = execCommand(parts.connection, {
    delivery: o.remote.delivery,
    ownGroup: o.remote.processGroup === "own",
    command: parts.command,
    cwd: o.cwd,
    env: o.env,
    timeoutMs: o.maxTimeoutMs,
    maxOutputBytes: 1024, // the whole output goes to `kept`
    onOutput: (stream, chunk) => parts.kept.push(stream, chunk),
    onChannel,
    handOver: true, // a child holding the output keeps the job's channel
  });
  // The channel opens (or the start fails, and the error goes to the caller) before the job exists.
  const channel = await Promise.race([opened, running.then(() => null)]);
  if (channel === null) {
    throw new SshMcpError("JOB_FAILED", "The job's channel never opened (the call's time ran out first)");
  }
  // Done once the command returned (its status is in) and the channel closed.
  const ended = running.then((r) => (result = r), () => null);
  const closed = Promise.all([ended, channel.closed]).then(() => {});
  const exit = () => result === null ? null : { code: result.exitCode, signal: result.signal };
  return new BoundJob({ ...parts, note, endsWith: "exit", control: { ...fromBackground(channel, exit), closed } });
}

function fromBackground(
  channel: BackgroundChannel,
  exit: () => { code: number | null; signal: string | null } | null,
): BoundControl {
  return {
    closed: channel.closed,
    exit,
    signal: (name) => channel.signal(name),
    kill: () => channel.kill(),
    close: () => channel.close(),
  };
}
