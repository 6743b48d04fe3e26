/**
 * Tools of the remote-file family, over SFTP: read, write, edit, list,
 * stat, mkdir, remove, rename, chmod.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { SFTPWrapper } from "../ssh2/mod.ts";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import * as sftp from "../ssh/sftp.ts";
import { remoteHome, resolveRemotePath } from "../ssh/remote_path.ts";
import {
  download,
  downloadTree,
  type TransferOptions,
  type TransferResult,
  upload,
  uploadTree,
} from "../ssh/transfer.ts";
import {
  confinedFiles,
  type LocalFiles,
  LocalPathError,
  resolveReadDir,
  resolveReadFile,
  resolveWriteDir,
  resolveWriteFile,
} from "../local_paths.ts";
import { startDirectory } from "../confined_route.ts";
import { RootsListSchema } from "../roots.ts";
import type { ToolDeps } from "./mod.ts";
import { guarded, ok, openWithin } from "./result.ts";
import * as s from "./schemas.ts";

const MAX_WHOLE_FILE = 16 * 1024 * 1024; // line reads and edits hold the whole file
const remotePath = s.remotePath.describe("Path on the remote host: absolute, ~/…, or relative to the login directory");
const parents = z.boolean().optional().describe("Create missing parent directories (default false)");
const octalMode = z.string().regex(/^0?[0-7]{3,4}$/, "an octal mode such as 644 or 0755")
  .describe("Permission bits in octal, e.g. 644 or 0755 (setuid/setgid/sticky allowed here only)");

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function isBinary(data: Uint8Array): boolean {
  if (data.includes(0)) return true;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(data);
    return false;
  } catch {
    return true; // invalid UTF-8: not text we can return as a string
  }
}

const statShape = {
  path: z.string(),
  type: z.enum(["file", "directory", "symlink", "other"]),
  special: z.enum(["FIFO", "socket", "character device", "block device", "special file"]).optional().describe(
    "What an `other` is",
  ),
  size: z.number(),
  mode: z.string().describe("Permission bits in octal"),
  mtime: z.string(),
  uid: z.number(),
  gid: z.number(),
};

function statOut(st: sftp.RemoteStat) {
  return { ...st, mode: st.mode.toString(8).padStart(4, "0") };
}

function localError(error: unknown): never {
  if (error instanceof LocalPathError) {
    const code = error.problem === "exists"
      ? "FILE_EXISTS"
      : error.problem === "not-found"
      ? "SFTP_NO_SUCH_FILE"
      : "PATH_NOT_ALLOWED";
    throw new SshMcpError(code, `Local path refused: ${error.message}`, {
      hint: error.problem === "exists"
        ? "Pass overwrite=true to replace it"
        : error.problem === "outside-roots"
        ? "Use a path inside the allowed local roots listed in the message"
        : error.problem === "not-private"
        ? "Remove group/other write from the directory named (chmod go-w), or use a root whose directories only " +
          "you and root can change"
        : "Give a regular file inside an allowed local directory",
      cause: error,
    });
  }
  throw error;
}

// The skipped entries in a line each for links and special files: the first few, so the text stays short.
function skippedText(skipped: ({ path: string; target: string } | { path: string; type: string })[] | undefined) {
  if (skipped === undefined || skipped.length === 0) return "";
  const line = (items: string[], what: string) => {
    if (items.length === 0) return "";
    const more = items.length > 3 ? ` and ${items.length - 3} more` : "";
    return `\n${items.length} ${what}: ${items.slice(0, 3).join(", ")}${more}`;
  };
  const links = skipped.flatMap((e) => ("target" in e ? [`${e.path} -> ${e.target}`] : []));
  const special = skipped.flatMap((e) => ("type" in e ? [`${e.path} (${e.type})`] : []));
  return line(links, `symlink${links.length === 1 ? "" : "s"} not created (absolute or outside the tree)`) +
    line(special, "FIFOs, sockets or devices not copied");
}

const transferOutput = {
  local_path: z.string().describe("The real local path used"),
  remote_path: z.string(),
  type: z.enum(["file", "directory"]),
  bytes: z.number().describe("Bytes of file content moved"),
  sha256: z.string().nullable().describe(
    "sha256 of the file when verify=true, else null (always null for directories)",
  ),
  mode: z.string(),
  verified: z.boolean().describe("Every file was read back and its sha256 compared"),
  files: z.number(),
  directories: z.number(),
  symlinks: z.number(),
  skipped: z.array(
    z.object({
      path: z.string(),
      target: z.string().optional().describe("Where a skipped symlink points"),
      type: z.string().optional().describe("What a skipped special file is: FIFO, socket, character device, ..."),
    }),
  ).optional().describe(
    "Entries of a downloaded tree not created: symlinks that are absolute or point outside the tree (with " +
      "target), and FIFOs, sockets and devices (with type), which are never opened",
  ),
  leftover: z.string().optional().describe(
    "Set when an existing directory was replaced but its old copy could not be removed: where it was left",
  ),
};

/** Registers the remote-file tools. */
export function registerFileTools(server: McpServer, deps: ToolDeps): void {
  const { sessions, roots, config } = deps;
  // Each request may wait on a silent channel as long as a command may run by default; past that the
  // channel is stuck (lib/ssh/sftp.ts) and is replaced.
  const requestDeadlineMs = config.defaultTimeoutSeconds * 1000;
  // `signal` (the call's cancel) bounds the wait for the shared channel to open, as it bounds each request.
  const session = async (id: string, signal?: AbortSignal) => {
    const connection = sessions.get(id).connection;
    const sf = await openWithin(requestDeadlineMs, signal, () =>
      new SshMcpError(
        "SFTP_TIMEOUT",
        `No SFTP channel on session ${id} within ${config.defaultTimeoutSeconds} s`,
        {
          hint: "Every channel of the session is taken (shells, commands, or SFTP channels stuck on the server) or " +
            "the server did not start its SFTP subsystem: close shells you no longer need, or reconnect",
        },
      ), (opening) => connection.sftp({ signal: opening }));
    sftp.setRequestDeadline(sf, requestDeadlineMs);
    return sf;
  };
  // A path argument as the server must see it: `~` and `~/…` in the remote user's home, asked once per
  // connection (lib/ssh/remote_path.ts).
  const resolve = (id: string, sf: SFTPWrapper, path: string) =>
    resolveRemotePath(path, () => remoteHome(sessions.get(id).connection, sf));

  // MCP progress notifications, when the client asked for them with a token.
  // `flush` waits for the last one to be written, so the final progress
  // always reaches the client before the result does.
  // deno-lint-ignore no-explicit-any
  function progress(extra: any): { report?: (done: number, total: number) => void; flush: () => Promise<unknown> } {
    const token = extra?._meta?.progressToken;
    let sent: Promise<unknown> = Promise.resolve();
    if (token === undefined) return { flush: () => sent };
    let last = 0;
    return {
      report: (done, total) => {
        if (done - last < 1024 * 1024 && done !== total) return;
        last = done;
        sent = extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken: token, progress: done, total },
        }).catch(() => {});
      },
      flush: () => sent,
    };
  }

  // Stops a transfer when the call is cancelled or the connection is lost
  // (ssh2 never answers the requests in flight on a dead connection).
  function transferSignal(sessionId: string, callSignal: AbortSignal): { signal: AbortSignal; done: () => void } {
    const stop = new AbortController();
    const off = sessions.get(sessionId).connection.onClose((reason) =>
      stop.abort(
        reason ??
          new SshMcpError("CONNECTION_LOST", "Connection closed during the transfer", {
            hint: "Call ssh_connect again",
          }),
      )
    );
    const onCancel = () => stop.abort(new SshMcpError("CANCELLED", "Transfer was cancelled"));
    callSignal.addEventListener("abort", onCancel, { once: true });
    return {
      signal: stop.signal,
      done: () => {
        off();
        callSignal.removeEventListener("abort", onCancel);
      },
    };
  }

  // The roots in force for this call: the client's list is (re)read here, inside
  // the tool call, so that over HTTP the request travels on the call's own stream.
  // deno-lint-ignore no-explicit-any
  const where = async (extra: any) => ({
    roots: await roots.require((options) => extra.sendRequest({ method: "roots/list" }, RootsListSchema, options)),
    // Captured at start-up: Deno.cwd() throws once the directory is deleted, and a
    // relative path must not change meaning while the server runs.
    cwd: startDirectory() ?? "",
  });
  // Local file actions for transfers, each confined to `roots` (lib/local_paths.ts, lib/confined.ts).
  function localFiles(allowed: string[]): LocalFiles {
    const c = confinedFiles(allowed);
    return {
      openRead: (path) => c.openRead(path).catch(localError),
      create: (path) => c.create(path).catch(localError),
      mkdir: (path, mode) => c.mkdir(path, mode).catch(localError),
      symlink: (target, path) => c.symlink(target, path).catch(localError),
      rename: (from, to, replace) => c.rename(from, to, replace).catch(localError),
      remove: (path) => c.remove(path).catch(localError),
      removeTree: (path) => c.removeTree(path).catch(localError),
      list: (path, max) => c.list(path, max).catch(localError),
      entry: (path) => c.entry(path).catch(localError),
      umask: c.umask,
    };
  }
  const isDirectory = (path: string) =>
    new SshMcpError("IS_A_DIRECTORY", `${path} is a directory`, {
      hint: "Pass recursive=true to transfer the whole directory",
    });

  type Run = (sf: SFTPWrapper, options: TransferOptions) => Promise<TransferResult>;

  // Runs one upload or download (the local path already confined) and shapes its result.
  // `remote` is the remote path already resolved.
  async function transfer(
    args: { session_id: string; overwrite?: boolean; verify?: boolean; parents?: boolean },
    // deno-lint-ignore no-explicit-any
    extra: any,
    local: string,
    remote: string,
    direction: "up" | "down",
    run: Run,
  ) {
    const sf = await session(args.session_id, extra.signal);
    const stop = transferSignal(args.session_id, extra.signal);
    const notify = progress(extra);
    const options = {
      overwrite: args.overwrite ?? false,
      verify: args.verify ?? false,
      parents: args.parents ?? false,
      onProgress: notify.report,
      signal: stop.signal,
    };
    const r = await run(sf, options).finally(stop.done);
    await notify.flush();
    const [from, to] = direction === "up" ? [local, remote] : [remote, local];
    const what = r.type === "file"
      ? `${r.bytes} bytes`
      : `${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${r.bytes} bytes`;
    return ok(
      {
        local_path: local,
        remote_path: remote,
        type: r.type,
        bytes: r.bytes,
        sha256: r.sha256,
        mode: r.mode.toString(8).padStart(4, "0"),
        verified: r.verified,
        files: r.files,
        directories: r.directories,
        symlinks: r.symlinks,
        ...(r.skipped === undefined ? {} : { skipped: r.skipped }),
        ...(r.leftover === undefined ? {} : { leftover: r.leftover }),
      },
      `${direction === "up" ? "Uploaded" : "Downloaded"} ${from} to ${to}: ${what}` +
        (r.verified ? (r.sha256 === null ? ", every file verified" : `, sha256 ${r.sha256} (verified)`) : "") +
        skippedText(r.skipped) +
        (r.leftover === undefined
          ? ""
          : `\nWarning: the replaced directory could not be removed and is left at ${r.leftover}`),
    );
  }

  const recursive = z.boolean().optional().describe(
    "Transfer a directory with everything in it (default false). Symlinks are copied as links, never followed; " +
      "remote FIFOs, sockets and devices are skipped (listed in skipped), local ones refuse the upload",
  );

  server.registerTool(
    "ssh_upload_file",
    {
      title: "Upload a file or directory",
      description: "Copy a local file, or a directory with recursive=true, to the remote host over SFTP. The local " +
        "path must be inside the allowed local directories. The copy is built under a temporary name and renamed " +
        "into place, so the target is never partial; modes are kept without setuid/setgid/sticky bits. Sends MCP " +
        "progress when asked.",
      inputSchema: {
        session_id: s.sessionId,
        local_path: z.string().min(1).max(4096).describe(
          "Local file or directory (relative to the server's working directory)",
        ),
        remote_path: remotePath.describe("Remote destination: the file's (or directory's) full new path, or ~/…"),
        overwrite: z.boolean().optional().describe(
          "Replace an existing remote file, or a whole existing directory (default false)",
        ),
        verify: z.boolean().optional().describe("Read every file back and compare sha256 (default false)"),
        recursive,
        parents,
      },
      outputSchema: transferOutput,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const place = await where(extra);
      const local = await resolveReadFile(args.local_path, place).then(
        (path) => ({ path, tree: false }),
        async (error) => {
          if (!(error instanceof LocalPathError && error.problem === "is-a-directory")) return localError(error);
          if (!args.recursive) throw isDirectory(args.local_path);
          return { path: await resolveReadDir(args.local_path, place).catch(localError), tree: true };
        },
      );
      const remote = await resolve(args.session_id, await session(args.session_id, extra.signal), args.remote_path);
      return await transfer(
        args,
        extra,
        local.path,
        remote,
        "up",
        (sf, options) => (local.tree ? uploadTree : upload)(sf, localFiles(place.roots), local.path, remote, options),
      );
    }),
  );

  server.registerTool(
    "ssh_download_file",
    {
      title: "Download a file or directory",
      description:
        "Copy a remote file, or a directory with recursive=true, to this machine over SFTP, into the allowed local " +
        "directories only. Built under a temporary name and renamed into place (never a partial file or tree under " +
        "the final name), never replacing an existing file unless overwrite=true, never through a symlink, and " +
        "without setuid/setgid/sticky bits.",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        local_path: z.string().min(1).max(4096).describe(
          "Local destination: the file's (or directory's) full new path, relative to the server's working directory",
        ),
        overwrite: z.boolean().optional().describe(
          "Replace an existing local file, or a whole existing directory (default false)",
        ),
        verify: z.boolean().optional().describe("Re-read every local file and compare sha256 (default false)"),
        recursive,
      },
      outputSchema: transferOutput,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const overwrite = args.overwrite ?? false;
      // Before anything remote: without a local root there is nothing to do.
      const place = await where(extra);
      const sf = await session(args.session_id, extra.signal);
      const remote = await resolve(args.session_id, sf, args.remote_path);
      const top = await sftp.stat(sf, remote, false, extra.signal);
      if (top.type !== "directory") sftp.requireRegularFile(top, "download");
      if (top.type === "directory") {
        if (!args.recursive) throw isDirectory(remote);
        const dest = await resolveWriteDir(args.local_path, { ...place, overwrite }).catch(localError);
        return await transfer(
          args,
          extra,
          dest.path,
          remote,
          "down",
          (sf, options) =>
            downloadTree(sf, localFiles(place.roots), remote, dest.path, {
              ...options,
              exists: dest.exists,
            }),
        );
      }
      const local = await resolveWriteFile(args.local_path, { ...place, overwrite }).catch(localError);
      return await transfer(
        args,
        extra,
        local,
        remote,
        "down",
        (sf, options) => download(sf, localFiles(place.roots), remote, local, options),
      );
    }),
  );

  server.registerTool(
    "ssh_read_remote_file",
    {
      title: "Read a remote file",
      description: "Read a remote file over SFTP, whole or by byte range (offset/length) or line range " +
        "(line_start/line_count), up to max_bytes. Text comes back as text; binary (NUL bytes or invalid UTF-8) as " +
        'base64, or is refused with binary="refuse". Reports the file size and the sha256 of what was returned.',
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        offset: z.int().min(0).optional().describe("Byte offset to start at (default 0)"),
        length: z.int().min(0).optional().describe("Bytes to read (default: up to max_bytes)"),
        line_start: z.int().min(1).optional().describe("First line to return (1-based); use instead of offset"),
        line_count: z.int().min(1).optional().describe("Number of lines to return from line_start"),
        max_bytes: z.int().min(1).max(MAX_WHOLE_FILE).optional().describe("Most bytes to return (default 262144)"),
        binary: z.enum(["base64", "refuse"]).optional().describe("What to do with binary content (default base64)"),
      },
      outputSchema: {
        path: z.string(),
        size: z.number().describe("Size of the whole file"),
        offset: z.number(),
        bytes: z.number().describe("Bytes returned"),
        complete: z.boolean().describe("The whole file was returned"),
        encoding: z.enum(["utf8", "base64"]),
        content: z.string(),
        sha256: z.string().describe("sha256 of the returned bytes (of the file when complete)"),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const signal = extra.signal;
      const maxBytes = args.max_bytes ?? 262144;
      let data: Uint8Array;
      let size: number;
      let offset = args.offset ?? 0;
      if (args.line_start !== undefined || args.line_count !== undefined) {
        const whole = await sftp.readRange(sf, path, { offset: 0, length: MAX_WHOLE_FILE + 1, signal });
        if (whole.size > MAX_WHOLE_FILE) {
          throw new SshMcpError("FILE_TOO_LARGE", `${path} is larger than 16 MiB`, {
            hint: "Read it by byte range (offset/length) instead of by lines",
          });
        }
        const lines = new TextDecoder().decode(whole.data).split(/(?<=\n)/);
        const first = (args.line_start ?? 1) - 1;
        const picked = lines.slice(first, args.line_count === undefined ? undefined : first + args.line_count);
        offset = new TextEncoder().encode(lines.slice(0, first).join("")).length;
        data = new TextEncoder().encode(picked.join("")).subarray(0, maxBytes);
        size = whole.size;
      } else {
        const r = await sftp.readRange(sf, path, {
          offset,
          length: Math.min(args.length ?? maxBytes, maxBytes),
          signal,
        });
        data = r.data;
        size = r.size;
      }
      const binary = isBinary(data);
      if (binary && args.binary === "refuse") {
        throw new SshMcpError("BINARY_FILE", `${path} is binary`, {
          hint: 'Read it with binary="base64", or download it with ssh_download_file',
        });
      }
      const complete = offset === 0 && data.length === size;
      const result = {
        path,
        size,
        offset,
        bytes: data.length,
        complete,
        encoding: binary ? "base64" as const : "utf8" as const,
        content: binary ? Buffer.from(data).toString("base64") : new TextDecoder().decode(data),
        sha256: sha256(data),
      };
      const head = `${path}: ${data.length} of ${size} bytes from offset ${offset}` +
        (binary ? " (binary, base64)" : "") + `, sha256 ${result.sha256}`;
      return ok(result, `${head}\n${result.content}`);
    }),
  );

  server.registerTool(
    "ssh_write_remote_file",
    {
      title: "Write a remote file",
      description: "Write content to a remote file over SFTP. create (default) refuses an existing file; overwrite " +
        "replaces it atomically (a temporary file in the same directory is renamed into place, so nobody sees a " +
        "partial file); append adds to the end.",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        content: z.string().max(MAX_WHOLE_FILE * 2).describe("The content (text, or base64 with encoding=base64)"),
        encoding: z.enum(["utf8", "base64"]).optional().describe("How content is encoded (default utf8)"),
        mode: z.enum(["create", "overwrite", "append"]).optional().describe("create (default), overwrite or append"),
        file_mode: octalMode.optional(),
        parents,
      },
      outputSchema: { path: z.string(), bytes: z.number(), sha256: z.string(), mode: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const data = args.encoding === "base64"
        ? new Uint8Array(Buffer.from(args.content, "base64"))
        : new TextEncoder().encode(args.content);
      const how = args.mode ?? "create";
      await sftp.writeFile(sf, path, data, {
        how,
        mode: args.file_mode === undefined ? undefined : parseInt(args.file_mode, 8),
        parents: args.parents ?? false,
        signal: extra.signal,
      });
      const hash = sha256(data);
      return ok(
        { path, bytes: data.length, sha256: hash, mode: how },
        `${how === "append" ? "Appended" : "Wrote"} ${data.length} bytes to ${path} (sha256 ${hash})`,
      );
    }),
  );

  server.registerTool(
    "ssh_edit_remote_file",
    {
      title: "Edit a remote file",
      description:
        "Replace exact text in a remote file: old_text must occur exactly expected_count times (default 1), " +
        "else nothing is written and the error says how many times it occurs. With expected_sha256 the edit applies " +
        "only if the file is unchanged since you read it. The file is replaced atomically and keeps its mode.",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        old_text: z.string().min(1).max(MAX_WHOLE_FILE).describe("Exact text to replace"),
        new_text: z.string().max(MAX_WHOLE_FILE).describe("Replacement text"),
        expected_count: z.int().min(1).max(100000).optional().describe("Occurrences expected (default 1)"),
        expected_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional()
          .describe("sha256 the file must have now (from ssh_read_remote_file)"),
      },
      outputSchema: { path: z.string(), replacements: z.number(), sha256_before: z.string(), sha256_after: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const whole = await sftp.readRange(sf, path, {
        offset: 0,
        length: MAX_WHOLE_FILE + 1,
        signal: extra.signal,
      });
      if (whole.size > MAX_WHOLE_FILE) {
        throw new SshMcpError("FILE_TOO_LARGE", `${path} is larger than 16 MiB`, {
          hint: "Edit it with ssh_execute (e.g. sed) instead",
        });
      }
      const before = sha256(whole.data);
      if (args.expected_sha256 !== undefined && args.expected_sha256 !== before) {
        throw new SshMcpError("PRECONDITION_FAILED", `${path} changed: its sha256 is ${before}`, {
          hint: "Read it again and redo the edit against the current content",
        });
      }
      if (isBinary(whole.data)) {
        throw new SshMcpError("BINARY_FILE", `${path} is binary; text edits are refused`);
      }
      const text = new TextDecoder().decode(whole.data);
      const count = text.split(args.old_text).length - 1;
      const expected = args.expected_count ?? 1;
      if (count !== expected) {
        throw new SshMcpError(
          count === 0 ? "EDIT_NO_MATCH" : "EDIT_AMBIGUOUS",
          `old_text occurs ${count} time${count === 1 ? "" : "s"} in ${path}, expected ${expected}`,
          {
            hint: count === 0
              ? "Copy old_text exactly from the file (whitespace and line endings included)"
              : "Include more surrounding text to make it unique, or set expected_count",
          },
        );
      }
      const updated = new TextEncoder().encode(text.split(args.old_text).join(args.new_text));
      await sftp.writeFile(sf, path, updated, { how: "overwrite", signal: extra.signal });
      const after = sha256(updated);
      return ok(
        { path, replacements: count, sha256_before: before, sha256_after: after },
        `Replaced ${count} occurrence${count === 1 ? "" : "s"} in ${path} (sha256 ${after})`,
      );
    }),
  );

  server.registerTool(
    "ssh_list_remote_dir",
    {
      title: "List a remote directory",
      description: "List a remote directory with type, size, mode, mtime and symlink targets; recurse to `depth` " +
        "levels; page with offset/limit through large directories.",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        depth: z.int().min(0).max(20).optional().describe("Levels to recurse below the directory (default 0)"),
        offset: z.int().min(0).max(1_000_000).optional().describe("Entries to skip (paging; default 0)"),
        limit: z.int().min(1).max(10000).optional().describe("Most entries to return (default 1000)"),
      },
      outputSchema: {
        path: z.string(),
        entries: z.array(
          z.object({ ...statShape, name: z.string(), depth: z.number(), target: z.string().optional() }),
        ),
        truncated: z.boolean().describe("More entries exist past offset + limit"),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const offset = args.offset ?? 0;
      const limit = args.limit ?? 1000;
      const r = await sftp.listDir(sf, path, { depth: args.depth ?? 0, max: offset + limit });
      const entries = r.entries.slice(offset).map((e) => ({
        ...statOut(e),
        name: e.name,
        depth: e.depth,
        target: e.target,
      }));
      const text = entries.map((e) =>
        `${"  ".repeat(e.depth)}${e.type === "directory" ? "d" : e.type === "symlink" ? "l" : "-"} ${e.mode} ` +
        `${String(e.size).padStart(10)} ${e.mtime} ${e.name}${e.target ? ` -> ${e.target}` : ""}`
      ).join("\n");
      return ok(
        { path, entries, truncated: r.truncated },
        `${path}: ${entries.length} entries${r.truncated ? " (more: raise offset)" : ""}\n${text}`,
      );
    }),
  );

  server.registerTool(
    "ssh_stat_remote",
    {
      title: "Stat a remote path",
      description: "Type, size, mode, mtime and owner of a remote path (symlinks followed unless no_follow).",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        no_follow: z.boolean().optional().describe("Describe a symlink itself"),
      },
      outputSchema: statShape,
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const st = statOut(await sftp.stat(sf, path, args.no_follow ?? false, extra.signal));
      const type = st.special === undefined ? st.type : `${st.type} (${st.special})`;
      return ok(st, `${st.path}: ${type}, ${st.size} bytes, mode ${st.mode}, modified ${st.mtime}`);
    }),
  );

  server.registerTool(
    "ssh_mkdir_remote",
    {
      title: "Create a remote directory",
      description: "Create a remote directory, with missing parents when parents=true.",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        parents: z.boolean().optional().describe("Create missing parents; no error if it exists (default false)"),
        file_mode: octalMode.optional(),
      },
      outputSchema: { path: z.string(), created: z.boolean() },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      await sftp.mkdir(sf, path, {
        parents: args.parents ?? false,
        mode: args.file_mode === undefined ? undefined : parseInt(args.file_mode, 8),
      });
      return ok({ path, created: true }, `Created ${path}`);
    }),
  );

  server.registerTool(
    "ssh_remove_remote",
    {
      title: "Remove a remote file or directory",
      description: "Remove a remote file, symlink or empty directory; a non-empty directory only with recursive=true.",
      inputSchema: {
        session_id: s.sessionId,
        remote_path: remotePath,
        recursive: z.boolean().optional().describe("Remove a directory and everything in it (default false)"),
      },
      outputSchema: { path: z.string(), removed: z.number().describe("Entries removed") },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const n = await sftp.remove(sf, path, { recursive: args.recursive ?? false });
      return ok({ path, removed: n }, `Removed ${path} (${n} entries)`);
    }),
  );

  server.registerTool(
    "ssh_rename_remote",
    {
      title: "Rename or move a remote path",
      description: "Rename or move a remote path; refuses to replace an existing target unless overwrite=true.",
      inputSchema: {
        session_id: s.sessionId,
        from_path: remotePath,
        to_path: remotePath,
        overwrite: z.boolean().optional().describe("Replace an existing target (default false)"),
      },
      outputSchema: { from_path: z.string(), to_path: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const from = await resolve(args.session_id, sf, args.from_path);
      const to = await resolve(args.session_id, sf, args.to_path);
      await sftp.rename(sf, from, to, { overwrite: args.overwrite ?? false });
      return ok({ from_path: from, to_path: to }, `Renamed ${from} to ${to}`);
    }),
  );

  server.registerTool(
    "ssh_chmod_remote",
    {
      title: "Change remote permissions",
      description: "Set the permission bits of a remote path.",
      inputSchema: { session_id: s.sessionId, remote_path: remotePath, file_mode: octalMode },
      outputSchema: { path: z.string(), mode: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const sf = await session(args.session_id, extra.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      await sftp.chmod(sf, path, parseInt(args.file_mode, 8));
      return ok({ path, mode: args.file_mode }, `Set mode ${args.file_mode} on ${path}`);
    }),
  );
}
