import { parseBasicUsers } from './htpasswd.js';

// alice / wonderland, bcrypt cost 4.
const ALICE = 'alice:$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK';

describe('parseBasicUsers', () => {
  test('reads htpasswd bcrypt lines', () => {
    expect([...parseBasicUsers([ALICE]).keys()]).toEqual(['alice']);
  });

  test('names the bad entry', () => {
    expect(() => parseBasicUsers([ALICE, 'bob'])).toThrow(/entry 2 \(user "bob"\) has no hash/);
    expect(() => parseBasicUsers([':$2y$04$Qa98o9T6thOSjFlKGhyLyOa3FcIAXj2SSskg.kYWEbngBdyeRrehK'])).toThrow(/no valid user name/);
    expect(() => parseBasicUsers(['carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='])).toThrow(/SHA-1 hash; only bcrypt/);
  });
});
