/** Container healthcheck: exits 0 when this gateway answers /healthz. No curl in the image. */
import { loadSetting } from './config.js';

try {
  const port = loadSetting('port');
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
