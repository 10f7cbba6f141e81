import { CLOSE, relayCloseCode } from './websocket.js';

describe('relayCloseCode', () => {
  test.each([
    [1000, 1000],
    [1001, 1001],
    [1009, 1009],
    [1011, 1011],
    [4003, 4003],
    [1005, undefined],
    [1006, CLOSE.bokehLost],
    [1015, CLOSE.bokehLost],
    [1004, CLOSE.internalError],
    [2000, CLOSE.internalError],
  ])('a close with %d is relayed as %p', (received, sent) => {
    expect(relayCloseCode(received, CLOSE.bokehLost)).toBe(sent);
  });
});
