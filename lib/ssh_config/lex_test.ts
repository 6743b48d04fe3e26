import assert from "node:assert/strict";
import { argvSplit, lexLine } from "./lex.ts";

Deno.test("lexLine() splits keyword and arguments on whitespace or one =", () => {
  const forms = ["Port 22", "Port=22", "Port = 22", "  port\t=\t22  ", "PORT   22\r"];
  for (const f of forms) assert.deepEqual(lexLine(f), { keyword: "port", args: ["22"], rest: "22" }, f);
});

Deno.test("lexLine() skips blank and comment lines", () => {
  for (const f of ["", "   ", "# Host x", "   # x", "\t\r"]) assert.equal(lexLine(f), null, JSON.stringify(f));
});

Deno.test("lexLine() keeps the raw rest for command keywords", () => {
  const l = lexLine('ProxyCommand ssh -W "%h:%p" jump # why') as { rest: string; args: string[] };
  assert.equal(l.rest, 'ssh -W "%h:%p" jump # why');
  assert.deepEqual(l.args, ["ssh", "-W", "%h:%p", "jump"]);
});

Deno.test("lexLine() reports a keyword without argument and unbalanced quotes", () => {
  assert.match(lexLine("HostName") as string, /no argument/);
  assert.match(lexLine("HostName   ") as string, /no argument/);
  assert.match(lexLine('IdentityFile "~/a b') as string, /invalid quotes/);
});

Deno.test("argvSplit() handles quotes, escapes and # only at the start of a word", () => {
  assert.deepEqual(argvSplit('"a b" c\\ d \'e "f\' g#h #rest'), ["a b", "c d", 'e "f', "g#h"]);
  assert.deepEqual(argvSplit('x"y z"w'), ["xy zw"]);
  assert.deepEqual(argvSplit('"\\"q\\""'), ['"q"']);
  assert.deepEqual(argvSplit("a\\nb"), ["a\\nb"]); // unknown escapes stay as written
  assert.deepEqual(argvSplit('""'), [""]);
  assert.equal(argvSplit("'open"), null);
});
