/** Hostile input against the apache layout (browser -> apache -> gateway -> bokeh); cases in support/hostile.ts. */
import { hostileSuite } from '../support/hostile-suite.js';

hostileSuite('apache');
