import assert from "node:assert/strict";
import { loadTls, tlsProblem } from "./tls.ts";

Deno.test("tlsProblem() allows loopback without TLS and nothing else", () => {
  for (const host of ["127.0.0.1", "127.0.0.2", "::1", "localhost"]) assert.equal(tlsProblem(host, false), null, host);
  for (const host of ["0.0.0.0", "::", "192.0.2.1", "example.com", "127.0.0.1.example.com"]) {
    assert.match(tlsProblem(host, false) ?? "", /without TLS.*--tls-cert FILE and --tls-key FILE/, host);
    assert.equal(tlsProblem(host, true), null, host);
  }
});

Deno.test("loadTls() names the file that is missing or holds no PEM block of its kind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-tls-unit-" });
  try {
    const cert = `${dir}/cert.pem`;
    const key = `${dir}/key.pem`;
    await Deno.writeTextFile(cert, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n");
    await Deno.writeTextFile(key, "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n");
    const pem = await loadTls({ certFile: cert, keyFile: key });
    assert.match(pem.cert, /BEGIN CERTIFICATE/);
    assert.match(pem.key, /BEGIN EC PRIVATE KEY/);
    await assert.rejects(loadTls({ certFile: `${dir}/nope`, keyFile: key }), /Cannot read the TLS certificate .*nope/);
    await assert.rejects(loadTls({ certFile: key, keyFile: key }), /holds no PEM certificate/);
    await assert.rejects(loadTls({ certFile: cert, keyFile: cert }), /holds no PEM key/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
