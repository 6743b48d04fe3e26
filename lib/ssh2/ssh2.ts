/**
 * ssh2 itself, loaded after the chacha20 leak fix (which must wrap
 * node:crypto before ssh2 copies its functions). Only ./mod.ts uses it.
 *
 * @module
 */

import "./chacha_fix.ts";
// @ts-types="@types/ssh2"
import ssh2 from "ssh2";

export default ssh2;
