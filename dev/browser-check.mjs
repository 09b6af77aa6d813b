#!/usr/bin/env node
// Open every page of a built MkDocs site in headless Chromium, as a reader on an
// air-gapped network would: the site is served on 127.0.0.1 and every other host is
// blocked. A page fails on
//   - a request to another host, a failed request or an HTTP error (the 404 page excepted),
//   - a console error or an uncaught exception,
//   - a Mermaid block that is not rendered to an SVG holding every node label of its source,
//   - a table cell narrower than its longest word (a word broken over two lines).
//
//   node dev/browser-check.mjs SITE_DIR --report FILE [--base /playbook/]
//        [--screenshots DIR --shots page/,page/] [--only page/,page/] [--jobs 2]
//
// Pages are named by their path in the site ('' is the home page, 'pipeline-graph/').
// Prints one line per page; writes the details as JSON to FILE; exits 1 when a page
// fails, 2 when the browser cannot run. Chromium is Debian's (/usr/bin/chromium, or
// $CHROMIUM): Playwright never downloads a browser.
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { extname, join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const VIEWPORT = { width: 1400, height: 900 };
const MISSING_PAGE = 'no-such-page/'; // served with 404.html and status 404, as GitLab Pages does
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.xml': 'application/xml',
  '.gz': 'application/gzip',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

// --------------------------------------------------------------------------- the site
async function* htmlPages(dir, site) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* htmlPages(path, site);
    else if (entry.name === 'index.html') {
      const page = relative(site, dir).split(sep).join('/');
      yield page ? `${page}/` : '';
    }
  }
}

function serve(site, base) {
  const server = createServer(async (request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    let status = 200;
    let file = null;
    if (url.pathname.startsWith(base)) {
      const candidate = resolve(site, decodeURIComponent(url.pathname.slice(base.length)));
      if (candidate === site || candidate.startsWith(site + sep)) {
        const info = await stat(candidate).catch(() => null);
        if (info?.isFile()) file = candidate;
        else if (info?.isDirectory() && existsSync(join(candidate, 'index.html'))) file = join(candidate, 'index.html');
      }
    }
    if (!file) [status, file] = [404, join(site, '404.html')];
    const body = await readFile(file).catch(() => Buffer.from('not found'));
    response.writeHead(status, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    response.end(body);
  });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done(server)));
}

// --------------------------------------------------------------------------- Mermaid
const ENTITIES = { '&quot;': '"', '&lt;': '<', '&gt;': '>', '&amp;': '&', '&#39;': "'" };
const MERMAID_ENTITIES = { '#quot;': '"', '#lt;': '<', '#gt;': '>', '#amp;': '&' };

/** The Mermaid sources of a built page, as Material finds them (before it renders them). */
function mermaidSources(html) {
  return [...html.matchAll(/<pre class="mermaid"><code>([\s\S]*?)<\/code><\/pre>/g)].map((m) =>
    m[1].replace(/&(quot|lt|gt|amp|#39);/g, (e) => ENTITIES[e]),
  );
}

/** Each line of each quoted node or subgraph label: what the SVG must show. */
function expectedLabels(source) {
  const labels = [];
  for (const [, label] of source.matchAll(/[[({>]"([^"]*)"/g)) {
    const text = label.replace(/#(quot|lt|gt|amp);/g, (e) => MERMAID_ENTITIES[e]);
    labels.push(...text.split(/<br\s*\/?>/).map((line) => line.trim()).filter(Boolean));
  }
  return labels;
}

/** Text of every SVG Material drew, from the closed shadow roots it puts them in. */
async function renderedDiagrams(page) {
  const cdp = await page.context().newCDPSession(page);
  const { root } = await cdp.send('DOM.getDocument', { depth: -1, pierce: true });
  await cdp.detach();
  const diagrams = [];
  const texts = (node, out) => {
    if (node.nodeType === 3) out.push(node.nodeValue);
    for (const child of [...(node.children ?? []), ...(node.shadowRoots ?? [])]) texts(child, out);
    return out;
  };
  const walk = (node) => {
    const attrs = node.attributes ?? [];
    const classes = attrs[attrs.indexOf('class') + 1] ?? '';
    if (node.nodeName === 'DIV' && attrs.includes('class') && classes.split(' ').includes('mermaid')) {
      const svg = (node.shadowRoots ?? []).flatMap((r) => r.children ?? []).find((c) => c.nodeName === 'svg');
      diagrams.push(svg ? texts(svg, []).map((t) => t.trim()).filter(Boolean) : null);
      return;
    }
    for (const child of [...(node.children ?? []), ...(node.shadowRoots ?? []), node.contentDocument ?? []].flat()) {
      walk(child);
    }
  };
  walk(root);
  return diagrams;
}

// --------------------------------------------------------------------------- tables
/** Words of table cells broken over lines or sticking out of their cell, with every tab
 *  holding a table shown in turn. */
function brokenTableWords() {
  const broken = [];
  for (const table of document.querySelectorAll('.md-typeset table')) {
    // Show the tab the table is in (Material's tabs are radio inputs before their blocks).
    for (let block = table.closest('.tabbed-block'); block; block = block.parentElement.closest('.tabbed-block')) {
      const set = block.closest('.tabbed-set');
      const index = [...block.parentElement.children].indexOf(block);
      const input = set.querySelectorAll(':scope > input')[index];
      if (input && !input.checked) input.click();
    }
    for (const cell of table.querySelectorAll('th, td')) {
      const box = cell.getBoundingClientRect();
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const match of node.nodeValue.matchAll(/\S+/g)) {
          const range = document.createRange();
          range.setStart(node, match.index);
          range.setEnd(node, match.index + match[0].length);
          const rects = [...range.getClientRects()].filter((r) => r.width > 0);
          const lines = new Set(rects.map((r) => Math.round(r.top)));
          const overflows = rects.some((r) => r.left < box.left - 1 || r.right > box.right + 1);
          if (lines.size > 1 || overflows) {
            broken.push({ word: match[0], cellWidth: Math.round(box.width), overflows });
          }
        }
      }
    }
  }
  return broken;
}

// --------------------------------------------------------------------------- pages
async function checkPage(browser, origin, base, site, name, options) {
  const url = `${origin}${base}${name}`;
  const started = Date.now();
  const problems = [];
  const blocked = new Set();
  // A context per page: no state (Material's linked tabs, storage) carries over.
  const context = await browser.newContext({ viewport: VIEWPORT, serviceWorkers: 'block' });
  const page = await context.newPage();
  page.on('console', (message) => {
    const expected = name === MISSING_PAGE && message.location().url === url; // its own 404
    if (message.type() === 'error' && !expected) problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught exception: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (!blocked.has(request.url())) problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  page.on('response', (response) => {
    const expected = name === MISSING_PAGE && response.url() === url;
    if (response.status() >= 400 && !expected) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  await page.route('**/*', (route) => {
    const target = route.request().url();
    if (target.startsWith(`${origin}/`)) return route.continue();
    blocked.add(target);
    problems.push(`external request: ${target}`);
    return route.abort('blockedbyclient');
  });

  if (name === MISSING_PAGE && !existsSync(join(site, '404.html'))) problems.push('the site has no 404.html');
  const response = await page.goto(url, { waitUntil: 'load' });
  const status = response?.status();
  if (name === MISSING_PAGE ? status !== 404 : status !== 200) problems.push(`status ${status} for ${url}`);

  // Material replaces each <pre class="mermaid"> by a <div class="mermaid"> once drawn.
  const html = await readFile(join(site, name === MISSING_PAGE ? '404.html' : join(name, 'index.html')), 'utf8');
  const sources = mermaidSources(html);
  if (sources.length) {
    await page
      .waitForFunction(() => !document.querySelector('pre.mermaid'), null, { timeout: options.mermaidTimeout })
      .catch(() => {});
  }
  const drawn = sources.length ? await renderedDiagrams(page) : [];
  const diagrams = sources.map((source, index) => {
    const text = drawn[index];
    const expected = expectedLabels(source);
    if (!text) {
      problems.push(`mermaid #${index + 1}: not rendered to an SVG`);
      return { index: index + 1, rendered: false, labels: [], missing: expected };
    }
    const joined = ` ${text.join(' ')} `.replace(/\s+/g, ' ');
    const missing = expected.filter((label) => !joined.includes(` ${label.replace(/\s+/g, ' ')} `));
    if (/Syntax error|Parse error/i.test(joined)) problems.push(`mermaid #${index + 1}: Mermaid drew an error`);
    if (!expected.length) problems.push(`mermaid #${index + 1}: no quoted node label to check`);
    if (missing.length) problems.push(`mermaid #${index + 1}: labels not drawn: ${missing.join(', ')}`);
    return { index: index + 1, rendered: true, labels: text, missing };
  });
  if (drawn.length > sources.length) problems.push(`${drawn.length} diagrams drawn, ${sources.length} in the page`);

  let screenshot = null;
  if (options.screenshots && options.shots.includes(name)) {
    screenshot = join(options.screenshots, `${name.replace(/\/$/, '').replaceAll('/', '-') || 'home'}.png`);
    // One screen (a full page costs seconds): the first diagram, or the top of the page.
    await page.evaluate(() => {
      const diagram = document.querySelector('div.mermaid');
      if (diagram) window.scrollTo(0, diagram.getBoundingClientRect().top + window.scrollY - 120); // below the header
    });
    await page.screenshot({ path: screenshot });
  }
  const broken = await page.evaluate(brokenTableWords);
  for (const { word, cellWidth, overflows } of broken) {
    problems.push(`table cell ${cellWidth}px wide ${overflows ? 'overflows with' : 'breaks'} the word ${word}`);
  }
  await context.close();
  return { page: name, url, seconds: (Date.now() - started) / 1000, problems, diagrams, screenshot };
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      report: { type: 'string' },
      base: { type: 'string', default: '/playbook/' },
      screenshots: { type: 'string' },
      shots: { type: 'string', default: '' },
      only: { type: 'string' },
      'mermaid-timeout': { type: 'string', default: '15000' },
      jobs: { type: 'string', default: '2' },
    },
  });
  const site = positionals[0] && resolve(positionals[0]);
  if (!site || !values.report) {
    console.error('usage: node dev/browser-check.mjs SITE_DIR --report FILE [--base /playbook/] [--screenshots DIR --shots a/,b/] [--only a/,b/]');
    return 2;
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`${CHROMIUM} is missing: install Debian's chromium (dev/install-test-deps.sh)`);
    return 2;
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (error) {
    console.error(`playwright-core is missing (${error.message}): run \`npm ci\` (make deps)`);
    return 2;
  }
  const list = (text) => text.split(',').map((item) => item.trim().replace(/^\/+/, ''));
  let pages = values.only !== undefined ? list(values.only) : null;
  if (!pages) {
    pages = [];
    for await (const page of htmlPages(site, site)) pages.push(page);
    if (!pages.length) {
      console.error(`${site} has no page (index.html)`);
      return 1;
    }
    pages = [...pages.sort(), MISSING_PAGE];
  }
  const options = {
    screenshots: values.screenshots && resolve(values.screenshots),
    shots: list(values.shots),
    mermaidTimeout: Number(values['mermaid-timeout']),
  };
  if (options.screenshots) await mkdir(options.screenshots, { recursive: true });

  const server = await serve(site, values.base);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage', // containers' /dev/shm is small
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const results = [];
  try {
    // A few pages at a time: each waits on the network and on rendering.
    const queue = [...pages];
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        const result = await checkPage(browser, origin, values.base, site, name, options);
        results.push(result);
        const drawn = result.diagrams.filter((d) => d.rendered).length;
        console.log(
          `${result.problems.length ? 'FAIL' : 'ok  '} /${name} (${drawn}/${result.diagrams.length} diagrams, ${result.seconds}s)` +
            result.problems.map((p) => `\n     ${p}`).join(''),
        );
      }
    };
    await Promise.all(Array.from({ length: Number(values.jobs) }, worker));
    results.sort((a, b) => pages.indexOf(a.page) - pages.indexOf(b.page));
  } finally {
    await browser.close();
    server.close();
  }
  await writeFile(values.report, JSON.stringify({ origin, viewport: VIEWPORT, pages: results }, null, 2));
  return results.some((r) => r.problems.length) ? 1 : 0;
}

process.exitCode = await main();
