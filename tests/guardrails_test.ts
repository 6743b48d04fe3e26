/**
 * End to end, under the shipped permission set, against a real sshd: the
 * host allowlist (refused before any TCP connection, aliases and jump hops
 * included), per-host policies (read-only, sudo, forwards, timeouts) and
 * human approval by MCP elicitation (accept, decline, cancel, no capability,
 * remember).
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import { ElicitRequestSchema, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  call,
  callOk,
  connectWithKey,
  ROOT,
  serverEnv,
  type ServerOptions,
  startServer,
  writeSshConfig,
} from "./fixtures/mcp.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

/** A TCP listener that counts the connections it accepts (and closes them). */
function recordingListener(): { port: number; accepted: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  void (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, accepted: () => accepted, close: () => listener.close() };
}

async function withConfig(dir: string, config: object, extra: ServerOptions = {}, args: string[] = []) {
  const path = `${dir}/config-${crypto.randomUUID()}.json`;
  await Deno.writeTextFile(path, JSON.stringify(config));
  return await startServer({ ...extra, args: ["--config", path, ...args, ...(extra.args ?? [])] });
}

function hostBlock(alias: string, host: string, port: number, sshd: Sshd, extra: string[] = []): string {
  return [
    `Host ${alias}`,
    `  HostName ${host}`,
    `  Port ${port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${sshd.keys.ed25519.path}`,
    ...extra.map((l) => `  ${l}`),
    "",
  ].join("\n");
}

Deno.test({ name: "the host allowlist refuses before any TCP connection", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-" });
  const trap = recordingListener();
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    const target = (host: string, port: number) => ({
      host,
      port,
      username: sshd.user,
      private_key_path: sshd.keys.ed25519.path,
    });
    await using server = await withConfig(dir, { allowed_hosts: [`127.0.0.1:${sshd.port}`] }, {}, [
      "--known-hosts",
      kh,
    ]);
    const c = server.client;
    await writeSshConfig(
      server,
      hostBlock("good", "127.0.0.1", sshd.port, sshd) +
        hostBlock(`127.0.0.1`, "127.0.0.1", trap.port, sshd) + // an alias spelled like an allowed host
        hostBlock("bastion", "127.0.0.1", trap.port, sshd) +
        hostBlock("inner", "127.0.0.1", sshd.port, sshd, ["ProxyJump bastion"]) +
        hostBlock("self", "127.0.0.1", sshd.port, sshd) +
        hostBlock("via-self", "127.0.0.1", sshd.port, sshd, ["ProxyJump self"]),
    );

    await t.step("an allowed host and port connects, directly and by alias", async () => {
      const direct = await callOk(c, "ssh_connect", target("127.0.0.1", sshd.port));
      await callOk(c, "ssh_close_session", { session_id: direct.structured.session_id });
      const alias = await callOk(c, "ssh_connect", { host: "good" });
      await callOk(c, "ssh_close_session", { session_id: alias.structured.session_id });
    });

    await t.step("another port, another spelling of an address, an alias: refused, nothing sent", async () => {
      const refused = [
        target("127.0.0.1", trap.port),
        target("localhost", sshd.port),
        target("2130706433", trap.port),
        { host: "127.0.0.1", port: trap.port, username: sshd.user }, // the alias's name, another port given
      ];
      for (const args of refused) {
        const r = await call(c, "ssh_connect", args);
        assert.equal(r.code, "HOST_NOT_ALLOWED", `${JSON.stringify(args)}: ${r.text}`);
        assert.match(r.text, /Nothing was sent/);
      }
      assert.equal(trap.accepted(), 0, "a refused host saw a TCP connection");
    });

    await t.step("a jump hop outside the list refuses the whole chain before the first hop", async () => {
      const r = await call(c, "ssh_connect", { host: "inner" });
      assert.equal(r.code, "HOST_NOT_ALLOWED", r.text);
      assert.match(r.text, new RegExp(`Jump host 1 of 1 127\\.0\\.0\\.1:${trap.port}`));
      assert.equal(trap.accepted(), 0, "the refused jump host saw a TCP connection");
    });

    await t.step("a chain whose every hop is listed connects", async () => {
      const r = await callOk(c, "ssh_connect", { host: "via-self" });
      assert.equal(r.structured.jumps.length, 1);
      await callOk(c, "ssh_close_session", { session_id: r.structured.session_id });
    });
  } finally {
    trap.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "--allow-host adds to the list, and a bad pattern stops start-up", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-" });
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await withConfig(dir, { allowed_hosts: ["db.example.com"] }, {}, [
      "--known-hosts",
      kh,
      "--allow-host",
      `[127.0.0.1]:${sshd.port}`,
    ]);
    const sid = await connectWithKey(server.client, sshd);
    await callOk(server.client, "ssh_execute", { session_id: sid, command: "true" });
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P", "--quiet", "main.ts", "--allow-host", "10.0.0.0/99"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--allow-host 10\.0\.0\.0\/99: prefix length 99/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Valid arguments for every tool that changes the host, on session `sid` with files under `dir`. */
function mutatingCalls(sid: string, dir: string): Record<string, Record<string, unknown>> {
  return {
    ssh_execute: { session_id: sid, command: `touch ${dir}/ran` },
    ssh_sudo_execute: { session_id: sid, command: `touch ${dir}/ran` },
    ssh_execute_many: { targets: [sid], command: `touch ${dir}/ran` },
    ssh_job: { session_id: sid, action: "list" },
    ssh_shell_open: { session_id: sid },
    ssh_shell_send: { session_id: sid, data: `touch ${dir}/ran` },
    ssh_shell_send_control: { session_id: sid, key: "ctrl+c" },
    ssh_shell_close: { session_id: sid },
    ssh_upload_file: { session_id: sid, local_path: `${dir}/local/up`, remote_path: `${dir}/ran` },
    ssh_write_remote_file: { session_id: sid, remote_path: `${dir}/ran`, content: "x" },
    ssh_edit_remote_file: { session_id: sid, remote_path: `${dir}/file`, old_text: "hello", new_text: "bye" },
    ssh_manage_remote: { session_id: sid, action: "remove", remote_path: `${dir}/file` },
    ssh_forward_port: { session_id: sid, direction: "dynamic" },
    ssh_close_forward: { session_id: sid, forward_id: "f-0000000000000000" },
  };
}

Deno.test({ name: "a read-only host refuses every tool that could change it; reads work", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-ro-" });
  try {
    await Deno.chmod(dir, 0o777);
    await Deno.writeTextFile(`${dir}/file`, "hello\n", { mode: 0o666 });
    await Deno.mkdir(`${dir}/local`);
    await Deno.writeTextFile(`${dir}/local/up`, "up\n");
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await withConfig(
      dir,
      { host_policies: [{ match: "127.0.0.1", read_only: true }, { match: "*", approval: "destructive" }] },
      {},
      ["--known-hosts", kh, "--allow-local-dir", `${dir}/local`],
    );
    const c = server.client;
    const sid = await connectWithKey(c, sshd);

    // Every tool tools/list marks as able to change something, but connect, diagnose (a login, as connect
    // makes) and close, is in the table.
    const listed = (await c.listTools()).tools;
    const calls = mutatingCalls(sid, dir);
    const changing = listed.filter((t) => t.annotations?.readOnlyHint !== true).map((t) => t.name)
      .filter((n) => !["ssh_connect", "ssh_diagnose", "ssh_close_session", "ssh_download_file"].includes(n));
    // Not read-only, yet where ssh_connect is allowed, so is the diagnosis of that login.
    const diagnosed = await callOk(c, "ssh_diagnose", {
      host: "127.0.0.1",
      port: sshd.port,
      username: sshd.user,
      private_key_path: sshd.keys.ed25519.path,
    });
    assert.equal(diagnosed.structured.ok, true, diagnosed.text);
    assert.deepEqual(changing.toSorted(), Object.keys(calls).toSorted(), "a changing tool is missing from the table");
    for (const [name, args] of Object.entries(calls)) {
      const r = await call(c, name, args);
      if (name === "ssh_execute_many") {
        assert.equal(r.structured.results[0].error_code, "POLICY_DENIED", r.text);
      } else {
        assert.equal(r.code, "POLICY_DENIED", `${name}: ${r.text}`);
        assert.match(r.text, /read_only/);
      }
    }
    await assert.rejects(Deno.lstat(`${dir}/ran`), Deno.errors.NotFound, "a refused tool ran");
    assert.equal(await Deno.readTextFile(`${dir}/file`), "hello\n", "the file was changed");

    // The first rule's read_only did not keep the second rule's approval from applying: a download (it may
    // overwrite a local file) needs a yes, which a client without forms cannot give.
    const down = await call(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${dir}/file`,
      local_path: `${dir}/local/got`,
    });
    assert.equal(down.code, "APPROVAL_UNAVAILABLE", down.text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "read tools work on a read-only host", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-ro-" });
  try {
    await Deno.chmod(dir, 0o777);
    await Deno.writeTextFile(`${dir}/file`, "hello\n", { mode: 0o666 });
    await Deno.mkdir(`${dir}/local`, { mode: 0o777 });
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await withConfig(
      dir,
      { host_policies: [{ match: ["10.*", "127.0.0.1"], read_only: true }] },
      {},
      [
        "--known-hosts",
        kh,
        "--allow-local-dir",
        `${dir}/local`,
      ],
    );
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    assert.equal(
      (await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${dir}/file` })).structured.content,
      "hello\n",
    );
    await callOk(c, "ssh_list_remote_dir", { session_id: sid, remote_path: dir });
    await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: `${dir}/file` });
    await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${dir}/file`,
      local_path: `${dir}/local/got`,
    });
    assert.equal(await Deno.readTextFile(`${dir}/local/got`), "hello\n");
    await callOk(c, "ssh_list_sessions");
    await callOk(c, "ssh_list_forwards", { session_id: sid });
    await callOk(c, "ssh_close_session", { session_id: sid });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** One `elicitation/create` as the client received it. */
interface Question {
  message: string;
  // deno-lint-ignore no-explicit-any
  requestedSchema: any;
}

Deno.test(
  { name: "approval by elicitation: accept, decline, cancel, remember, no capability", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-guard-ok-" });
    try {
      await Deno.chmod(dir, 0o777);
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      const config = { host_policies: [{ match: "127.0.0.1", approval: "destructive" }] };
      let answer: (q: Question) => ElicitResult = () => ({ action: "decline" });
      const questions: Question[] = [];
      await using server = await withConfig(dir, config, { capabilities: { elicitation: {} } }, ["--known-hosts", kh]);
      server.client.setRequestHandler(ElicitRequestSchema, (request) => {
        const q = request.params as Question;
        questions.push(q);
        return answer(q);
      });
      const c = server.client;
      const sid = await connectWithKey(c, sshd);
      assert.equal(questions.length, 0, "connect is not a destructive call");
      const marker = (name: string) => `${dir}/${name}`;
      const ran = async (name: string) => await Deno.lstat(marker(name)).then(() => true, () => false);

      await t.step("a read needs no approval", async () => {
        await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: dir });
        assert.equal(questions.length, 0);
      });

      await t.step("accept runs it; the question shows host, user, tool and the exact command", async () => {
        answer = () => ({ action: "accept", content: {} });
        const command = `touch '${marker("a")}' # \u202e tricky\nsecond line`;
        await callOk(c, "ssh_execute", { session_id: sid, command });
        assert.equal(await ran("a"), true);
        const q = questions.at(-1)!;
        assert.ok(q.message.includes(`ssh_execute on ${sshd.user}@127.0.0.1:${sshd.port}`), q.message);
        // JSON-quoted and escaped: the line break and the bidi override show as escapes, nothing hides.
        assert.ok(q.message.includes(`command: "touch '${marker("a")}' # \\u202e tricky\\nsecond line"`), q.message);
        assert.equal(q.requestedSchema.properties.remember.type, "boolean");
      });

      await t.step("decline and cancel refuse with APPROVAL_DECLINED; nothing runs", async () => {
        for (const action of ["decline", "cancel"] as const) {
          answer = () => ({ action });
          const before = questions.length;
          const r = await call(c, "ssh_execute", { session_id: sid, command: `touch '${marker(action)}'` });
          assert.equal(r.code, "APPROVAL_DECLINED", r.text);
          assert.match(r.text, new RegExp(action));
          assert.equal(await ran(action), false, `${action}: it ran`);
          assert.equal(questions.length, before + 1);
        }
      });

      await t.step("the sudo password is never shown to the approver", async () => {
        answer = () => ({ action: "decline" });
        const r = await call(c, "ssh_sudo_execute", { session_id: sid, command: "true", password: "canary-7f3a9" });
        assert.equal(r.code, "APPROVAL_DECLINED");
        assert.ok(!questions.at(-1)!.message.includes("canary-7f3a9"), questions.at(-1)!.message);
        assert.match(questions.at(-1)!.message, /password: \(secret, not shown\)/);
      });

      await t.step("remember: the identical request runs unasked; any other one asks again", async () => {
        answer = () => ({ action: "accept", content: { remember: true } });
        const args = { session_id: sid, command: `touch '${marker("r")}'` };
        await callOk(c, "ssh_execute", args);
        const asked = questions.length;
        answer = () => ({ action: "decline" });
        await Deno.remove(marker("r"));
        await callOk(c, "ssh_execute", args);
        assert.equal(await ran("r"), true, "the remembered request did not run");
        assert.equal(questions.length, asked, "the remembered request was asked again");
        const other = await call(c, "ssh_execute", { ...args, cwd: "/" });
        assert.equal(other.code, "APPROVAL_DECLINED", "a different request rode on the remembered approval");
        const otherTool = await call(c, "ssh_sudo_execute", { session_id: sid, command: args.command });
        assert.equal(otherTool.code, "APPROVAL_DECLINED");
        assert.equal(questions.length, asked + 2);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({ name: "approval fails closed for a client that cannot elicit", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-noask-" });
  try {
    await Deno.chmod(dir, 0o777);
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await withConfig(dir, { host_policies: [{ match: "*", approval: "destructive" }] }, {}, [
      "--known-hosts",
      kh,
    ]);
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    const r = await call(c, "ssh_execute", { session_id: sid, command: `touch '${dir}/ran'` });
    assert.equal(r.code, "APPROVAL_UNAVAILABLE", r.text);
    assert.match(r.text, /elicitation/);
    await assert.rejects(Deno.lstat(`${dir}/ran`), Deno.errors.NotFound);
    const many = await callOk(c, "ssh_execute_many", { targets: [sid], command: `touch '${dir}/ran'` });
    assert.equal(many.structured.results[0].error_code, "APPROVAL_UNAVAILABLE");
    await assert.rejects(Deno.lstat(`${dir}/ran`), Deno.errors.NotFound);
    await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "allow_sudo, allow_forwards and max_timeout hold on their hosts only", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-caps-" });
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    const config = {
      default_timeout: 60,
      host_policies: [
        { match: `127.0.0.1:${sshd.port}`, allow_sudo: false, allow_forwards: false, max_timeout: 2 },
      ],
    };
    await using server = await withConfig(dir, config, {}, ["--known-hosts", kh]);
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    assert.equal((await call(c, "ssh_sudo_execute", { session_id: sid, command: "true" })).code, "POLICY_DENIED");
    assert.equal((await call(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" })).code, "POLICY_DENIED");
    const over = await call(c, "ssh_execute", { session_id: sid, command: "true", timeout: 3 });
    assert.equal(over.code, "POLICY_DENIED");
    assert.match(over.text, /timeout <= 2/);
    const bg = await call(c, "ssh_execute", { session_id: sid, command: "true", background: true });
    assert.equal(bg.code, "POLICY_DENIED");
    // No timeout given: the server's default (60 s) comes down to the host's 2 s.
    const slow = await call(c, "ssh_execute", { session_id: sid, command: "sleep 30" });
    assert.equal(slow.structured.timed_out, true, slow.text);
    await callOk(c, "ssh_execute", { session_id: sid, command: "true", timeout: 2 });
    // The same sshd by another name (localhost is not 127.0.0.1 to a pattern): no policy there.
    await Deno.writeTextFile(kh, sshd.hostKeys.map((k) => `[localhost]:${sshd.port} ${k.publicKeyLine}\n`).join(""), {
      append: true,
    });
    const other = await callOk(c, "ssh_connect", {
      host: "localhost",
      port: sshd.port,
      username: sshd.user,
      private_key_path: sshd.keys.ed25519.path,
    });
    await callOk(c, "ssh_forward_port", { session_id: other.structured.session_id, direction: "dynamic" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "the README's narrowed --allow-net makes Deno refuse a host outside it", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-guard-net-" });
  const trap = recordingListener();
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    const home = `${dir}/home`;
    await Deno.mkdir(`${home}/.ssh`, { recursive: true });
    // The README's command with this test's paths: no -P, every permission spelled out and narrowed.
    const transport = new StdioClientTransport({
      command: Deno.execPath(),
      args: [
        "run",
        "--quiet",
        "--frozen",
        "--config",
        `${ROOT}deno.json`,
        `--allow-net=127.0.0.1:${sshd.port}`,
        `--allow-read=${home}/.ssh,${dir},${sshd.keys.ed25519.path}`,
        `--allow-write=${home}/.ssh/known_hosts`,
        "--allow-env=HOME,USERPROFILE,USER,LOGNAME,USERNAME,SSH_AUTH_SOCK",
        "--allow-sys=hostname,uid",
        `${ROOT}main.ts`,
        "--known-hosts",
        kh,
        "--log-level",
        "debug",
      ],
      env: serverEnv(home),
      stderr: "pipe",
    });
    let stderr = "";
    transport.stderr?.on("data", (chunk: Uint8Array) => stderr += new TextDecoder().decode(chunk));
    const client = new Client({ name: "t", version: "0" });
    await client.connect(transport);
    try {
      const target = { username: sshd.user, private_key_path: sshd.keys.ed25519.path, host: "127.0.0.1" };
      const ok = await call(client, "ssh_connect", { ...target, port: sshd.port });
      assert.equal(ok.isError, false, `${ok.text}\n${stderr}`);
      const refused = await call(client, "ssh_connect", { ...target, port: trap.port });
      assert.equal(refused.isError, true);
      assert.equal(refused.code, "HOST_NOT_ALLOWED", refused.text);
      assert.match(refused.text, /--allow-net/);
      assert.equal(trap.accepted(), 0, "Deno let a connection through outside --allow-net");
    } finally {
      await client.close();
    }
  } finally {
    trap.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  { name: "guardrails reach past session_id: forwards, all-sessions listings, connects", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-guard-reach-" });
    const trap = recordingListener();
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      await Deno.writeTextFile(kh, sshd.hostKeys.map((k) => `[localhost]:${sshd.port} ${k.publicKeyLine}\n`).join(""), {
        append: true,
      });
      const key = { username: sshd.user, private_key_path: sshd.keys.ed25519.path };

      await t.step("a remote forward may not make this server connect outside the allowed hosts", async () => {
        await using server = await withConfig(dir, { allowed_hosts: [`127.0.0.1:${sshd.port}`] }, {}, [
          "--known-hosts",
          kh,
        ]);
        const sid = await connectWithKey(server.client, sshd);
        const r = await call(server.client, "ssh_forward_port", {
          session_id: sid,
          direction: "remote",
          local_port: trap.port,
        });
        assert.equal(r.code, "HOST_NOT_ALLOWED", r.text);
        const ok = await callOk(server.client, "ssh_forward_port", {
          session_id: sid,
          direction: "remote",
          local_port: sshd.port,
        });
        assert.ok(ok.structured.forward_id);
        assert.equal(trap.accepted(), 0);
      });

      await t.step("an all-sessions job listing skips a session whose host policy refuses it", async () => {
        await using server = await withConfig(dir, { host_policies: [{ match: "127.0.0.1", read_only: true }] }, {}, [
          "--known-hosts",
          kh,
        ]);
        const c = server.client;
        const ro = await connectWithKey(c, sshd);
        const rw =
          (await callOk(c, "ssh_connect", { host: "localhost", port: sshd.port, ...key })).structured.session_id;
        assert.equal((await call(c, "ssh_job", { session_id: ro, action: "list" })).code, "POLICY_DENIED");
        const listed = await callOk(c, "ssh_job", { session_id: rw, action: "list", all_sessions: true });
        assert.match(listed.text, new RegExp(`Not listed \\(host policy\\): ${ro} \\(POLICY_DENIED\\)`), listed.text);
      });

      await t.step("approval: all asks before ssh_connect sends anything", async () => {
        const questions: string[] = [];
        let answer: ElicitResult = { action: "decline" };
        await using server = await withConfig(
          dir,
          { host_policies: [{ match: "127.0.0.1", approval: "all" }] },
          { capabilities: { elicitation: {} } },
          ["--known-hosts", kh],
        );
        server.client.setRequestHandler(ElicitRequestSchema, (request) => {
          questions.push((request.params as Question).message);
          return answer;
        });
        const refused = await call(server.client, "ssh_connect", { host: "127.0.0.1", port: trap.port, ...key });
        assert.equal(refused.code, "APPROVAL_DECLINED", refused.text);
        assert.equal(trap.accepted(), 0, "a declined connect reached the host");
        assert.match(
          questions[0],
          new RegExp(`Approve ssh_connect on ${sshd.user}@127\\.0\\.0\\.1:${trap.port}\\?\\nNew session`),
        );
        assert.match(questions[0], /private_key_path: /);
        answer = { action: "accept", content: {} };
        await callOk(server.client, "ssh_connect", { host: "127.0.0.1", port: sshd.port, ...key });
      });
    } finally {
      trap.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
