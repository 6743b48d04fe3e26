import assert from "node:assert/strict";
import { checkOne, checkText, checkValue, type ErrorReply } from "./jsonrpc.ts";

/** The reply a check gives (failing when it passes the message on). */
function reply(text: string): ErrorReply | ErrorReply[] | null {
  const c = checkText(text);
  assert.ok(!("message" in c), `passed on: ${text}`);
  return c.reply;
}

function one(text: string): ErrorReply {
  const r = reply(text);
  assert.ok(r !== null && !Array.isArray(r), `one reply expected for ${text}`);
  return r;
}

Deno.test("checkText answers text that is not JSON with -32700 and id null, without quoting it", () => {
  for (const text of ["not json", "{", '{"password":"hunter2"', "\u0000"]) {
    const r = one(text);
    assert.deepEqual([r.id, r.error.code], [null, -32700]);
    assert.doesNotMatch(r.error.message, /hunter2/);
  }
});

Deno.test("checkText answers invalid requests with -32600 and their id when it can be read", () => {
  const cases: [string, string | number | null][] = [
    ['{"jsonrpc":"1.0","id":2,"method":"ping"}', 2],
    ['{"id":"a","method":"ping"}', "a"],
    ['{"jsonrpc":"2.0","id":3,"method":7}', 3],
    ['{"jsonrpc":"2.0","id":1.5,"method":"ping"}', 1.5],
    // Rounded by JSON.parse: sending back the rounded value would name another request.
    ['{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}', null],
    ['{"jsonrpc":"2.0","id":null,"method":"ping"}', null],
    ['{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', null],
    ['{"jsonrpc":"2.0","id":4,"method":"tools/call","params":null}', 4],
    ['{"jsonrpc":"2.0","id":5,"method":"ping","params":"x"}', 5],
    ['{"jsonrpc":"2.0","id":6,"method":"ping","extra":1}', 6],
    ['{"jsonrpc":"2.0","id":7}', 7],
    ["5", null],
    ["null", null],
    ['"ping"', null],
    ["[]", null],
  ];
  for (const [text, id] of cases) {
    const r = one(text);
    assert.deepEqual([r.id, r.error.code], [id, -32600], text);
  }
});

Deno.test("checkText answers bad params with -32602: by position, or failing the method's own schema", () => {
  const cases: [string, number][] = [
    ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}', 1],
    ['{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":"y"}}', 2],
    ['{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":{}}}', 3],
    ['{"jsonrpc":"2.0","id":4,"method":"initialize","params":{}}', 4],
  ];
  for (const [text, id] of cases) {
    const r = one(text);
    assert.deepEqual([r.id, r.error.code], [id, -32602], text);
  }
  assert.match(one(cases[1][0]).error.message, /arguments/);
});

Deno.test("checkText answers nothing to a malformed notification or response, and passes valid messages on", () => {
  for (
    const text of [
      '{"jsonrpc":"1.0","method":"notifications/initialized"}',
      '{"jsonrpc":"2.0","method":"notifications/x","params":null}',
      '{"jsonrpc":"2.0","id":1,"result":5}',
      '{"jsonrpc":"2.0","id":1.5,"error":{}}',
    ]
  ) assert.equal(reply(text), null, text);
  for (
    const text of [
      '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      '{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"toString","arguments":{}}}',
      '{"jsonrpc":"2.0","id":2,"method":"no/such/method","params":{"a":1}}',
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      '{"jsonrpc":"2.0","id":3,"result":{}}',
    ]
  ) assert.ok("message" in checkText(text), text);
});

Deno.test("checkValue refuses a batch: each request in it gets -32600 with its own id", () => {
  const c = checkValue([
    { jsonrpc: "2.0", id: 1, method: "ping" },
    { jsonrpc: "2.0", method: "notifications/initialized" },
    { jsonrpc: "2.0", id: "b", method: "tools/list", params: [] },
    7,
  ]);
  assert.ok(!("message" in c) && Array.isArray(c.reply));
  assert.deepEqual(c.reply.map((r) => [r.id, r.error.code]), [[1, -32600], ["b", -32602], [null, -32600]]);
  const notes = checkValue([{ jsonrpc: "2.0", method: "notifications/initialized" }]);
  assert.ok(!("message" in notes) && notes.reply === null);
});

Deno.test("checkOne does not read a __proto__ member as the message's prototype", () => {
  const c = checkOne(JSON.parse('{"__proto__":{"jsonrpc":"2.0","id":1,"method":"ping"}}'));
  assert.ok(!("message" in c));
});
