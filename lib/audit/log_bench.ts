// Cost of one audit append (redact, hash, stat, write), 10,000 appends per
// case, on tmpfs (/dev/shm) and on the disk under /tmp, with and without
// fdatasync; the figures behind AuditOptions.fsync's default. Run alone:
// `flock /tmp/bench.lock deno bench -A --frozen lib/audit/log_bench.ts`.

import { type AuditEntry, AuditLog } from "./mod.ts";

const dirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of dirs) Deno.removeSync(dir, { recursive: true });
});

async function logIn(parent: string, options: { fsync?: boolean; chain?: boolean }): Promise<AuditLog> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "mcp-audit-bench-" });
  dirs.push(dir);
  const log = await AuditLog.open({ path: `${dir}/audit.jsonl`, ...options });
  if (log.failure !== null) throw new Error(log.failure);
  return log;
}

// A typical call: an ssh_execute of a short command (a line of about 450 bytes).
let i = 0;
function entry(): AuditEntry {
  i++;
  return {
    startedAt: new Date(),
    durationMs: 12,
    transportSession: "3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
    sshSession: "s7",
    host: "db1.example.internal",
    port: 22,
    user: "deploy",
    tool: "ssh_execute",
    arguments: { session_id: "s7", command: `systemctl status nginx --no-pager # ${i}`, timeout: 30, stdin: "y\n" },
    outcome: "ok",
    exitCode: 0,
    signal: null,
    bytesIn: 2,
    bytesOut: 1834,
    approval: "not_required",
  };
}

const tmpfs = "/dev/shm";
const disk = "/tmp";
const cases: [string, string, { fsync?: boolean; chain?: boolean }][] = [
  ["tmpfs", tmpfs, { fsync: false }],
  ["tmpfs, chain off", tmpfs, { fsync: false, chain: false }],
  ["tmpfs, fsync", tmpfs, { fsync: true }],
  ["disk", disk, { fsync: false }],
  ["disk, fsync", disk, { fsync: true }],
];
for (const [name, parent, options] of cases) {
  const log = await logIn(parent, options);
  Deno.bench({ name: `append (${name})`, group: "append", n: 10_000, warmup: 100 }, async () => {
    await log.append(entry());
  });
}
