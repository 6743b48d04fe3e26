// deno-lint-ignore-file no-explicit-any
/** The parts of ssh2's lib/protocol/crypto.js the tests use. */
declare const ssh2Crypto: {
  CIPHER_INFO: Record<string, unknown>;
  init: Promise<void>;
  createCipher(config: any): { allocPacket(n: number): Buffer; encrypt(packet: Buffer): void };
  createDecipher(config: any): unknown;
};
export default ssh2Crypto;
