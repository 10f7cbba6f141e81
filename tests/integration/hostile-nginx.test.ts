/** Hostile input against the nginx layout (browser -> nginx -> gateway -> bokeh); cases in support/hostile.ts. */
import { hostileSuite } from '../support/hostile-suite.js';

hostileSuite('nginx');
