import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { DenoSocket, type SocketError, toSocketError } from "./socket.ts";

async function withPeer(fn: (socket: DenoSocket, peer: Deno.TcpConn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const [socket, peer] = await Promise.all([DenoSocket.connect("127.0.0.1", port), listener.accept()]);
  listener.close();
  try {
    await fn(socket, peer as Deno.TcpConn);
  } finally {
    socket.destroy();
    try {
      peer.close();
    } catch { /* closed by the test */ }
  }
}

async function readAll(conn: Deno.Conn): Promise<string> {
  return new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
}

Deno.test("DenoSocket sends writes of one task together, in order, then half-closes on end()", async () => {
  await withPeer(async (socket, peer) => {
    socket.write(Buffer.from("a"));
    socket.write("bc");
    socket.write(new Uint8Array([100]));
    socket.end();
    assert.equal(socket.writable, false);
    assert.equal(socket.write("late"), false);
    assert.equal(await readAll(peer), "abcd");
  });
});

Deno.test("DenoSocket delivers data only after resume(), then end and close when the peer closes", async () => {
  await withPeer(async (socket, peer) => {
    const events: string[] = [];
    socket.on("data", (d: Buffer) => events.push(`data:${d.toString()}`));
    const closed = new Promise((r) => socket.on("close", r));
    socket.on("end", () => events.push("end"));
    await peer.write(new TextEncoder().encode("hello"));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events, []);
    socket.resume();
    await new Promise((r) => setTimeout(r, 20));
    peer.close();
    await closed;
    assert.deepEqual(events, ["data:hello", "end"]);
    assert.equal(socket._readableState.ended, true);
  });
});

Deno.test("DenoSocket gives each data event its own bytes", async () => {
  await withPeer(async (socket, peer) => {
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.resume();
    await peer.write(new TextEncoder().encode("first"));
    await new Promise((r) => setTimeout(r, 20));
    await peer.write(new TextEncoder().encode("2nd"));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(chunks.map(String), ["first", "2nd"]);
  });
});

Deno.test("DenoSocket.connect() fails with ECONNREFUSED on a closed port", async () => {
  // A port just freed can be taken at once by another test file running in parallel: then a connect
  // succeeds and proves nothing, so another port is tried. A refusal must be ECONNREFUSED every time.
  for (let attempt = 1;; attempt++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = l.addr as Deno.NetAddr;
    l.close();
    const outcome = await DenoSocket.connect("127.0.0.1", port).then((socket) => socket, (error) => ({ error }));
    if ("error" in outcome) {
      assert.equal(toSocketError(outcome.error).code, "ECONNREFUSED");
      return;
    }
    outcome.destroy();
    assert.ok(attempt < 5, "five freed ports in a row were taken by someone else");
  }
});

Deno.test("toSocketError() keeps an existing code", () => {
  const e: SocketError = Object.assign(new Error("x"), { code: "EHOSTUNREACH" });
  assert.equal(toSocketError(e).code, "EHOSTUNREACH");
});

Deno.test("DenoSocket lends its read buffer only while the reader keeps nothing, and not after that changes", async () => {
  await withPeer(async (socket, peer) => {
    const seen: { chunk: Buffer; copy: string }[] = [];
    let keeps = false;
    socket.keepsNoChunk = () => !keeps;
    socket.on("data", (d: Buffer) => {
      seen.push({ chunk: d, copy: d.toString() });
      if (seen.length === 2) keeps = true; // e.g. a rekey to a decipher that keeps views
    });
    socket.resume();
    for (const text of ["one", "two", "three", "four"]) {
      await peer.write(new TextEncoder().encode(text));
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(seen.map((s) => s.copy), ["one", "two", "three", "four"]);
    // the first two were lent: the same memory, since overwritten
    assert.equal(seen[0].chunk.buffer, seen[1].chunk.buffer);
    assert.equal(seen[0].chunk.toString(), "two");
    // the second was read while lending was allowed, so the third read went
    // to a new buffer, and from then on each chunk is a copy that stays intact
    assert.notEqual(seen[2].chunk.buffer, seen[1].chunk.buffer);
    assert.deepEqual(seen.map((s) => s.chunk.toString()), ["two", "two", "three", "four"]);
  });
});

Deno.test("DenoSocket sends a turn's writes larger than its write buffer whole and in order", async () => {
  await withPeer(async (socket, peer) => {
    // Small chunks filling the buffer past its end, one larger than the buffer, then small ones again.
    const sizes = [1, 100_000, 100_000, 70_000, 300_000, 5, 262_144, 262_143, 9];
    const chunks = sizes.map((n, i) => new Uint8Array(n).map((_, j) => (i * 31 + j) & 0xff));
    for (const c of chunks) socket.write(Buffer.from(c));
    socket.end();
    const got = new Uint8Array(await new Response(peer.readable).arrayBuffer());
    const want = Buffer.concat(chunks);
    assert.equal(got.length, want.length);
    assert.ok(Buffer.from(got).equals(want));
  });
});
