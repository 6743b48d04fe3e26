/**
 * Soak (`deno task soak`): rekeying under load over 4 GiB, sshd rekeying every 256 MiB. `deno
 * task test` runs the same load with a 32 MiB limit over 512 MiB (tests/exec_test.ts): as many
 * key exchanges with data in flight, an eighth of the bytes to encrypt.
 *
 * @module
 */

import { rekeyUnderLoad } from "../fixtures/rekey.ts";
import { sshdAvailable } from "../fixtures/sshd.ts";

Deno.test(
  { name: "rekeying under load over 4 GiB keeps output and exit codes intact", ignore: !sshdAvailable() },
  async () => {
    await rekeyUnderLoad({ rekeyLimit: "256M", bytes: "2G", byteCount: 2 * 1024 ** 3, minRekeys: 16 });
  },
);
