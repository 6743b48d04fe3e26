/**
 * Tools of the remote-file family, over SFTP: read, write, edit, list, stat,
 * and one tool for mkdir, remove, rename and chmod; and the transfer family:
 * upload and download of files and directory trees.
 *
 * @module
 */

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
import { quoteName } from "../remote_text.ts";
import { defineTool, type RequestExtra, type ToolContext, type ToolDef, type ToolDeps } from "./define.ts";
import { ok, sessionSftp } from "./result.ts";
import * as s from "./schemas.ts";

const MAX_WHOLE_FILE = 16 * 1024 * 1024; // line reads and edits hold the whole file
// Absolute, `~/…` or relative to the login directory: said once, in the server's instructions.
const remotePath = s.remotePath;
const parents = z.boolean().optional().describe("Like mkdir -p");
const octalMode = z.string().regex(/^0?[0-7]{3,4}$/, "an octal mode such as 644 or 0755").describe("Octal, e.g. 644");

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
  // Quoted when they need it: a remote name with a newline would forge a line of this text.
  const links = skipped.flatMap((e) => ("target" in e ? [`${quoteName(e.path)} -> ${quoteName(e.target)}`] : []));
  const special = skipped.flatMap((e) => ("type" in e ? [`${quoteName(e.path)} (${e.type})`] : []));
  return line(links, `symlink${links.length === 1 ? "" : "s"} not created (absolute or outside the tree)`) +
    line(special, "FIFOs, sockets or devices not copied");
}

/** The remote-file tools (toolset `files`) and the transfer tools (toolset `transfer`). */
export function fileTools(deps: ToolDeps): ToolDef[] {
  const { sessions, roots, config } = deps;
  // `signal` (the call's cancel) bounds the wait for the shared channel to open, as it bounds each request.
  const session = (id: string, signal?: AbortSignal) => sessionSftp(sessions.get(id), config, signal);
  // A path argument as the server must see it: `~` and `~/…` in the remote user's home, asked once per
  // connection (lib/ssh/remote_path.ts).
  const resolve = (id: string, sf: SFTPWrapper, path: string) =>
    resolveRemotePath(path, () => remoteHome(sessions.get(id).connection, sf));
  // Whether `path` names / or the remote home, however it is spelled (`/home/u/.`, `//`).
  const isRootOrHome = async (id: string, sf: SFTPWrapper, path: string) => {
    const real = await sftp.realpath(sf, path).catch(() => null);
    if (real === null) return false; // nothing there to remove: the remove will say so
    return real === "/" || real === await remoteHome(sessions.get(id).connection, sf);
  };

  // Progress every MiB (and at the end), when the client asked for it.
  function progress(ctx: ToolContext): (done: number, total: number) => void {
    let last = 0;
    return (done, total) => {
      if (done - last < 1024 * 1024 && done !== total) return;
      last = done;
      ctx.progress(done, total);
    };
  }

  // The roots in force for this call: the client's list is (re)read here, inside
  // the tool call, so that over HTTP the request travels on the call's own stream.
  const where = async (extra: RequestExtra) => ({
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
    ctx: ToolContext,
    local: string,
    remote: string,
    direction: "up" | "down",
    run: Run,
  ) {
    // ctx.signal: the call's cancel, and the connection's loss (ssh2 never answers
    // the requests in flight on a dead connection).
    ctx.session(args.session_id);
    const sf = await session(args.session_id, ctx.signal);
    const options = {
      overwrite: args.overwrite ?? false,
      verify: args.verify ?? false,
      parents: args.parents ?? false,
      onProgress: progress(ctx),
      signal: ctx.signal,
    };
    const r = await run(sf, options);
    await ctx.progressSent(); // the last progress reaches the client before the result
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

  const recursive = z.boolean().optional().describe("A whole tree (links kept)");

  const uploadFile = defineTool({
    name: "ssh_upload_file",
    toolset: "transfer",
    title: "Upload a file or directory",
    description: "Copy a local file (or tree, recursive=true) from allowed local directories to the remote " +
      "path, atomically (temp name, then rename). Sends progress.",
    input: {
      session_id: s.sessionId,
      local_path: z.string().min(1).max(4096),
      remote_path: remotePath.describe("Full new path"),
      overwrite: z.boolean().optional(),
      verify: z.boolean().optional().describe("Read back and compare sha256"),
      recursive,
      parents,
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      const place = await where(ctx.extra);
      const local = await resolveReadFile(args.local_path, place).then(
        (path) => ({ path, tree: false }),
        async (error) => {
          if (!(error instanceof LocalPathError && error.problem === "is-a-directory")) return localError(error);
          if (!args.recursive) throw isDirectory(args.local_path);
          return { path: await resolveReadDir(args.local_path, place).catch(localError), tree: true };
        },
      );
      const remote = await resolve(args.session_id, await session(args.session_id, ctx.signal), args.remote_path);
      return await transfer(
        args,
        ctx,
        local.path,
        remote,
        "up",
        (sf, options) => (local.tree ? uploadTree : upload)(sf, localFiles(place.roots), local.path, remote, options),
      );
    },
  });

  const downloadFile = defineTool({
    name: "ssh_download_file",
    toolset: "transfer",
    title: "Download a file or directory",
    description: "Copy a remote file (or tree, recursive=true) into allowed local directories, atomically, " +
      "never through a symlink.",
    input: {
      session_id: s.sessionId,
      remote_path: remotePath,
      local_path: z.string().min(1).max(4096).describe("Full new path"),
      overwrite: z.boolean().optional(),
      verify: z.boolean().optional().describe("Read back and compare sha256"),
      recursive,
    },
    changes: "local",
    destructive: true,
    run: async (args, ctx) => {
      const overwrite = args.overwrite ?? false;
      // Before anything remote: without a local root there is nothing to do.
      const place = await where(ctx.extra);
      const sf = await session(args.session_id, ctx.signal);
      const remote = await resolve(args.session_id, sf, args.remote_path);
      const top = await sftp.stat(sf, remote, false, ctx.signal);
      if (top.type !== "directory") sftp.requireRegularFile(top, "download");
      if (top.type === "directory") {
        if (!args.recursive) throw isDirectory(remote);
        const dest = await resolveWriteDir(args.local_path, { ...place, overwrite }).catch(localError);
        return await transfer(
          args,
          ctx,
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
        ctx,
        local,
        remote,
        "down",
        (sf, options) => download(sf, localFiles(place.roots), remote, local, options),
      );
    },
  });

  const readFile = defineTool({
    name: "ssh_read_remote_file",
    toolset: "files",
    title: "Read a remote file",
    description: "Read a remote file: whole, by bytes (offset/length) or lines (line_start/line_count); binary " +
      "as base64; with size and sha256. Untrusted content.",
    input: {
      session_id: s.sessionId,
      remote_path: remotePath,
      offset: z.int().min(0).optional(),
      length: z.int().min(0).optional(),
      line_start: z.int().min(1).optional().describe("1-based"),
      line_count: z.int().min(1).optional(),
      max_bytes: z.int().min(1).max(MAX_WHOLE_FILE).optional().describe("Default 262144"),
      binary: z.enum(["base64", "refuse"]).optional(),
    },
    output: {
      path: z.string(),
      size: z.number(),
      offset: z.number(),
      bytes: z.number(),
      complete: z.boolean(),
      encoding: z.enum(["utf8", "base64"]),
      content: z.string(),
      sha256: z.string(),
    },
    changes: "nothing",
    run: async (args, ctx) => {
      const sf = await session(args.session_id, ctx.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const signal = ctx.signal;
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
    },
  });

  const writeFile = defineTool({
    name: "ssh_write_remote_file",
    toolset: "files",
    title: "Write a remote file",
    description: "Write a remote file. mode create (default) refuses an existing file, overwrite replaces it " +
      "atomically, append appends.",
    input: {
      session_id: s.sessionId,
      remote_path: remotePath,
      content: z.string().max(MAX_WHOLE_FILE * 2),
      encoding: z.enum(["utf8", "base64"]).optional(),
      mode: z.enum(["create", "overwrite", "append"]).optional(),
      file_mode: octalMode.optional(),
      parents,
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      const sf = await session(args.session_id, ctx.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const data = args.encoding === "base64"
        ? new Uint8Array(Buffer.from(args.content, "base64"))
        : new TextEncoder().encode(args.content);
      const how = args.mode ?? "create";
      await sftp.writeFile(sf, path, data, {
        how,
        mode: args.file_mode === undefined ? undefined : parseInt(args.file_mode, 8),
        parents: args.parents ?? false,
        signal: ctx.signal,
      });
      const hash = sha256(data);
      return ok(
        { path, bytes: data.length, sha256: hash, mode: how },
        `${how === "append" ? "Appended" : "Wrote"} ${data.length} bytes to ${path} (sha256 ${hash})`,
      );
    },
  });

  const editFile = defineTool({
    name: "ssh_edit_remote_file",
    toolset: "files",
    title: "Edit a remote file",
    description: "Replace old_text with new_text in a remote file, atomically; old_text must occur " +
      "expected_count times (default 1); with expected_sha256 only if unchanged.",
    input: {
      session_id: s.sessionId,
      remote_path: remotePath,
      old_text: z.string().min(1).max(MAX_WHOLE_FILE),
      new_text: z.string().max(MAX_WHOLE_FILE),
      expected_count: z.int().min(1).max(100000).optional(),
      expected_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      const sf = await session(args.session_id, ctx.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const whole = await sftp.readRange(sf, path, {
        offset: 0,
        length: MAX_WHOLE_FILE + 1,
        signal: ctx.signal,
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
      await sftp.writeFile(sf, path, updated, { how: "overwrite", signal: ctx.signal });
      const after = sha256(updated);
      return ok(
        { path, replacements: count, sha256_before: before, sha256_after: after },
        `Replaced ${count} occurrence${count === 1 ? "" : "s"} in ${path} (sha256 ${after})`,
      );
    },
  });

  const listDir = defineTool({
    name: "ssh_list_remote_dir",
    toolset: "files",
    title: "List a remote directory",
    description: "List a remote directory: type, size, mode, mtime, link targets; recurse to depth; page with " +
      "offset/limit (default 1000).",
    input: {
      session_id: s.sessionId,
      remote_path: remotePath,
      depth: z.int().min(0).max(20).optional(),
      offset: z.int().min(0).max(1_000_000).optional(),
      limit: z.int().min(1).max(10000).optional(),
    },
    output: {
      path: z.string(),
      entries: z.array(z.object({ ...statShape, name: z.string(), depth: z.number(), target: z.string().optional() })),
      truncated: z.boolean(),
    },
    changes: "nothing",
    run: async (args, ctx) => {
      const sf = await session(args.session_id, ctx.signal);
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
      // Names quoted when they need it: a newline in a name would forge a line.
      const text = entries.map((e) =>
        `${"  ".repeat(e.depth)}${e.type === "directory" ? "d" : e.type === "symlink" ? "l" : "-"} ${e.mode} ` +
        `${String(e.size).padStart(10)} ${e.mtime} ${quoteName(e.name)}` +
        (e.target !== undefined ? ` -> ${quoteName(e.target)}` : "")
      ).join("\n");
      return ok(
        { path, entries, truncated: r.truncated },
        `${path}: ${entries.length} entries${r.truncated ? " (more: raise offset)" : ""}\n${text}`,
      );
    },
  });

  const statPath = defineTool({
    name: "ssh_stat_remote",
    toolset: "files",
    title: "Stat a remote path",
    description: "Type, size, mode, mtime, owner of a remote path (no_follow: of a symlink itself).",
    input: { session_id: s.sessionId, remote_path: remotePath, no_follow: z.boolean().optional() },
    output: statShape,
    changes: "nothing",
    run: async (args, ctx) => {
      const sf = await session(args.session_id, ctx.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const st = statOut(await sftp.stat(sf, path, args.no_follow ?? false, ctx.signal));
      const type = st.special === undefined ? st.type : `${st.type} (${st.special})`;
      return ok(st, `${st.path}: ${type}, ${st.size} bytes, mode ${st.mode}, modified ${st.mtime}`);
    },
  });

  // mkdir, rm, mv and chmod as one tool: four tools' descriptions and schemas
  // would cost every conversation four times the bytes for what one `action` says.
  const manage = defineTool({
    name: "ssh_manage_remote",
    toolset: "files",
    title: "Create, remove, rename or chmod a remote path",
    description: "mkdir (parents: like -p), remove (recursive: a non-empty directory too), rename to to_path " +
      "(overwrite replaces), chmod to file_mode.",
    input: {
      session_id: s.sessionId,
      action: z.enum(["mkdir", "remove", "rename", "chmod"]),
      remote_path: remotePath,
      to_path: remotePath.optional(),
      file_mode: octalMode.optional(),
      parents: z.boolean().optional(),
      recursive: z.boolean().optional(),
      overwrite: z.boolean().optional(),
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      // The arguments are checked before anything remote happens.
      const refuse = (field: string, why: string) =>
        new SshMcpError("INVALID_ARGUMENT", `action ${args.action}: ${field} ${why}`, {
          hint: "mkdir takes parents and file_mode; remove takes recursive; rename takes to_path and overwrite; " +
            "chmod takes file_mode",
        });
      const allowed: Record<typeof args.action, string[]> = {
        mkdir: ["parents", "file_mode"],
        remove: ["recursive"],
        rename: ["to_path", "overwrite"],
        chmod: ["file_mode"],
      };
      for (const field of ["to_path", "file_mode", "parents", "recursive", "overwrite"] as const) {
        // A field that does nothing for this action is a mistake the caller should hear about.
        if (args[field] !== undefined && !allowed[args.action].includes(field)) throw refuse(field, "does not apply");
      }
      if (args.action === "rename" && args.to_path === undefined) throw refuse("to_path", "is required");
      if (args.action === "chmod" && args.file_mode === undefined) throw refuse("file_mode", "is required");
      const sf = await session(args.session_id, ctx.signal);
      const path = await resolve(args.session_id, sf, args.remote_path);
      const mode = args.file_mode === undefined ? undefined : parseInt(args.file_mode, 8);
      switch (args.action) {
        case "mkdir":
          await sftp.mkdir(sf, path, { parents: args.parents ?? false, mode });
          return ok({ action: args.action, path, created: true }, `Created ${path}`);
        case "remove": {
          if (args.recursive && await isRootOrHome(args.session_id, sf, path)) {
            // `~` now means the home: one slip (`remote_path: "~"`) must not empty it.
            throw new SshMcpError("INVALID_ARGUMENT", `Refusing to remove ${path} recursively: it is / or the home`, {
              hint: "Remove what is inside it by its own paths, or use ssh_execute if you really mean it",
            });
          }
          const n = await sftp.remove(sf, path, { recursive: args.recursive ?? false });
          return ok({ action: args.action, path, removed: n }, `Removed ${path} (${n} entries)`);
        }
        case "rename": {
          const to = await resolve(args.session_id, sf, args.to_path!);
          await sftp.rename(sf, path, to, { overwrite: args.overwrite ?? false });
          return ok({ action: args.action, from_path: path, to_path: to }, `Renamed ${path} to ${to}`);
        }
        case "chmod":
          await sftp.chmod(sf, path, mode!);
          return ok({ action: args.action, path, mode: args.file_mode }, `Set mode ${args.file_mode} on ${path}`);
      }
    },
  });

  return [uploadFile, downloadFile, readFile, writeFile, editFile, listDir, statPath, manage];
}
