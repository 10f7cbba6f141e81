/** Hostile input against the bare-dev layout (browser -> gateway -> bokeh); cases in support/hostile.ts. */
import { hostileSuite } from '../support/hostile-suite.js';

hostileSuite('bare-dev');
