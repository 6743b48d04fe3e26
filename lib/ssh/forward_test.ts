import assert from "node:assert/strict";
import { parseSocks } from "./forward.ts";

const greeting = [0x05, 0x01, 0x00];
const connect = (atyp: number, addr: number[], port: number, cmd = 0x01) => [
  0x05,
  cmd,
  0x00,
  atyp,
  ...addr,
  port >> 8,
  port & 0xff,
];

Deno.test("parseSocks() waits for a whole greeting, then a whole request", () => {
  const bytes = [...greeting, ...connect(0x01, [10, 0, 0, 1], 8080)];
  for (let n = 0; n < 3; n++) assert.equal(parseSocks(new Uint8Array(bytes.slice(0, n))), null, `${n} bytes`);
  const greeted = parseSocks(new Uint8Array(greeting));
  assert.deepEqual(greeted, { methods: [0], request: null, used: 3 });
  for (let n = 3; n < bytes.length; n++) {
    assert.equal(parseSocks(new Uint8Array(bytes.slice(0, n)))?.request, null, `${n} bytes`);
  }
  const full = parseSocks(new Uint8Array(bytes));
  assert.deepEqual(full?.request, { target: { host: "10.0.0.1", port: 8080 }, rest: new Uint8Array(0) });
});

Deno.test("parseSocks() reads IPv6 and domain names, and keeps bytes sent after the request", () => {
  const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01];
  const six = parseSocks(new Uint8Array([...greeting, ...connect(0x04, v6, 443)]));
  assert.deepEqual(six?.request, { target: { host: "2001:db8:0:0:0:0:0:1", port: 443 }, rest: new Uint8Array(0) });
  const name = [...new TextEncoder().encode("db.internal")];
  const named = parseSocks(new Uint8Array([...greeting, ...connect(0x03, [name.length, ...name], 5432), 1, 2, 3]));
  assert.deepEqual(named?.request, { target: { host: "db.internal", port: 5432 }, rest: new Uint8Array([1, 2, 3]) });
});

Deno.test("parseSocks() refuses what it does not carry with the right reply code", () => {
  const bind = parseSocks(new Uint8Array([...greeting, ...connect(0x01, [127, 0, 0, 1], 80, 0x02)]));
  assert.deepEqual(bind?.request, { refuse: 0x07 }); // command not supported
  const udp = parseSocks(new Uint8Array([...greeting, ...connect(0x01, [127, 0, 0, 1], 80, 0x03)]));
  assert.deepEqual(udp?.request, { refuse: 0x07 });
  const atyp = parseSocks(new Uint8Array([...greeting, 0x05, 0x01, 0x00, 0x09, 1, 2, 3, 4, 0, 80]));
  assert.deepEqual(atyp?.request, { refuse: 0x08 }); // address type not supported
  const portZero = parseSocks(new Uint8Array([...greeting, ...connect(0x01, [127, 0, 0, 1], 0)]));
  assert.deepEqual(portZero?.request, { refuse: 0x05 });
  // Names go to the server to resolve, never to a shell or a command line; still, only host-name characters pass.
  for (const hostile of ["", "a b", "x;id", "a\0b", "$(id)", "a/b", "ü.example"]) {
    const name = [...new TextEncoder().encode(hostile)];
    const r = parseSocks(new Uint8Array([...greeting, ...connect(0x03, [name.length, ...name], 80)]));
    assert.deepEqual(r?.request, { refuse: 0x08 }, JSON.stringify(hostile));
  }
});

Deno.test("parseSocks() throws on bytes that are not SOCKS5", () => {
  assert.throws(() => parseSocks(new TextEncoder().encode("GET / HTTP/1.1\r\n")), /not a SOCKS5 client/);
  assert.throws(() => parseSocks(new Uint8Array([0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0])), /version byte 4/);
  assert.throws(() => parseSocks(new Uint8Array([0x05, 0x00])), /no methods/);
  assert.throws(
    () => parseSocks(new Uint8Array([...greeting, 0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80])),
    /wrong version/,
  );
});
