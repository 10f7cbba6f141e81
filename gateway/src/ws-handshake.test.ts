import { acceptKey } from './ws-handshake.js';

test("the handshake's accept value is the one RFC 6455 derives from the key", () => {
  // The worked example in RFC 6455 section 1.3.
  expect(acceptKey('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});
