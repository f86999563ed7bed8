import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** A static file the dashboard serves. */
export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

let uplot: { js: Asset; css: Asset } | undefined;

/**
 * uPlot's browser build and stylesheet, read once from the installed `uplot` package: the page
 * loads them from the dashboard itself, never from a CDN (the machines this runs on may have no
 * outside network, and a CDN would see every dashboard visit).
 */
export function uplotAssets(): { js: Asset; css: Asset } {
  if (uplot) return uplot;
  const require = createRequire(import.meta.url);
  // The package has no "exports" map: resolve its manifest, then the dist files beside it.
  const dir = require.resolve('uplot/package.json').replace(/package\.json$/, '');
  uplot = {
    js: { type: 'text/javascript; charset=utf-8', body: readFileSync(`${dir}dist/uPlot.iife.min.js`) },
    css: { type: 'text/css; charset=utf-8', body: readFileSync(`${dir}dist/uPlot.min.css`) },
  };
  return uplot;
}
