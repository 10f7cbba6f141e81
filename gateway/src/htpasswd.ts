/**
 * htpasswd entries (`user:hash`, what `htpasswd -nbB user password` prints), bcrypt only. Read
 * by the configuration, which refuses to start on a bad entry, and by HTTP Basic sign-in.
 */

const USER_NAME = /^[^\s:]{1,64}$/;
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** Parses htpasswd lines, accepting bcrypt only; throws with a message naming the bad line. */
export function parseBasicUsers(lines: string[]): Map<string, string> {
  const users = new Map<string, string>();
  lines.forEach((line, index) => {
    const colon = line.indexOf(':');
    const user = colon === -1 ? line : line.slice(0, colon);
    const hash = colon === -1 ? '' : line.slice(colon + 1);
    const where = `entry ${index + 1} (user "${user.slice(0, 64)}")`;
    if (!USER_NAME.test(user)) throw new Error(`${where} has no valid user name before ":"`);
    if (!BCRYPT.test(hash)) {
      const kind = hash.startsWith('$apr1$') ? 'an MD5 hash' : hash.startsWith('{SHA}') ? 'a SHA-1 hash' : hash === '' ? 'no hash' : 'not a bcrypt hash';
      throw new Error(`${where} has ${kind}; only bcrypt is accepted (htpasswd -nbB ${user.slice(0, 64)} 'password')`);
    }
    if (users.has(user)) throw new Error(`${where} repeats a user name`);
    users.set(user, hash);
  });
  return users;
}
