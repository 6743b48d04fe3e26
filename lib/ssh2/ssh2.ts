/**
 * The one entry point to ssh2: loads the chacha20 leak fix first.
 *
 * @module
 */

import "./chacha_fix.ts";
// @ts-types="@types/ssh2"
import ssh2 from "ssh2";

export default ssh2;
