#!/usr/bin/env node
// Parse every Mermaid diagram of a built MkDocs site with Mermaid itself (the version the
// site serves), so a diagram that would show "Syntax error" fails the tests. Quick and
// without a browser; dev/browser-check.mjs draws them in Chromium.
//
//   node dev/check-mermaid.mjs SITE_DIR
//
// Prints one line per diagram; exits 1 when any fails to parse or none is found.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { JSDOM } from 'jsdom';

// Mermaid expects a browser; a jsdom window is enough for parsing.
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');

async function* htmlFiles(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* htmlFiles(path);
    else if (entry.name.endsWith('.html')) yield path;
  }
}

async function main(site) {
  if (!site) {
    console.error('usage: node dev/check-mermaid.mjs SITE_DIR');
    return 2;
  }
  let count = 0;
  let failures = 0;
  for await (const file of htmlFiles(site)) {
    const text = await readFile(file, 'utf8');
    if (!text.includes('mermaid')) continue;
    const page = new JSDOM(text).window.document;
    for (const [index, block] of [...page.querySelectorAll('pre.mermaid')].entries()) {
      count += 1;
      const where = `${relative(site, file)}#${index + 1}`;
      try {
        await mermaid.parse(block.textContent);
        console.log(`ok   ${where}`);
      } catch (error) {
        failures += 1;
        console.log(`FAIL ${where}: ${String(error.message ?? error).split('\n').slice(0, 4).join(' | ')}`);
      }
    }
  }
  if (!count) {
    console.log(`FAIL ${site}: no Mermaid diagram found`);
    return 1;
  }
  return failures ? 1 : 0;
}

process.exitCode = await main(process.argv[2]);
