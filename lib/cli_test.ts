import assert from "node:assert/strict";
import { HELP, parseFlags } from "./cli.ts";

Deno.test("parseFlags() takes --tls-cert and --tls-key together for the HTTP transports", () => {
  const flags = parseFlags(["--transport", "streamable-http", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
  assert.equal(flags.tlsCert, "c.pem");
  assert.equal(flags.tlsKey, "k.pem");
  const none = parseFlags(["--transport", "sse"]);
  assert.equal(none.tlsCert, undefined);
  assert.equal(none.tlsKey, undefined);
});

Deno.test("parseFlags() refuses a certificate without its key, and TLS flags with stdio", () => {
  assert.throws(() => parseFlags(["--transport", "sse", "--tls-cert", "c.pem"]), /go together/);
  assert.throws(() => parseFlags(["--transport", "sse", "--tls-key", "k.pem"]), /go together/);
  assert.throws(() => parseFlags(["--tls-cert", "c.pem", "--tls-key", "k.pem"]), /HTTP transports only/);
});

Deno.test("the help text names the TLS flags and says beyond loopback needs them", () => {
  assert.match(HELP, /--tls-cert FILE/);
  assert.match(HELP, /--tls-key FILE/);
  assert.match(HELP, /than loopback needs TLS/);
});

Deno.test("parseFlags() takes the test-only --test-ssh2-version, which the help text does not offer", () => {
  assert.equal(parseFlags(["--test-ssh2-version", "0.0.0"]).testSsh2Version, "0.0.0");
  assert.equal(parseFlags([]).testSsh2Version, undefined);
  assert.doesNotMatch(HELP, /test-ssh2-version/);
});
